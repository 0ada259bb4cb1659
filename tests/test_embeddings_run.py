"""The embeddings task end to end: parallel pairs in, a sentence-transformers student out."""

from __future__ import annotations

import json
import random

import numpy as np

from tests.conftest import FILLER, KEYWORDS

#: a made-up second language: every word has its own translation (a fixed permutation of the vocabulary)
WORDS = FILLER + [w for group in KEYWORDS for w in group]
TRANSLATE = dict(zip(WORDS, random.Random(7).sample(WORDS, len(WORDS)), strict=True))


def parallel_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = rng.sample(WORDS, rng.randint(4, 8))
        rows.append({"text": " ".join(words), "translation": " ".join(TRANSLATE[w] for w in words), "lang": "fr"})
    return rows


CONFIG = """\
task: embeddings
teacher:
  model: {teacher}
student:
  keep_layers: 1
  prefix: "query: "
data:
  train: {{path: train.jsonl, translation_column: translation, lang_column: lang}}
  eval: {{path: test.jsonl, translation_column: translation, lang_column: lang}}
  max_length: 32
objectives:
  embedding_mse: {{weight: 1.0}}
  embedding_similarity: {{weight: 0.1, temperature: 0.05}}
training:
  num_train_epochs: 20
  learning_rate: 0.003
  per_device_train_batch_size: 32
  use_cpu: true
evaluation:
  efficiency: "off"
"""


def test_embeddings_run_saves_a_sentence_transformer_matching_the_in_memory_student(tiny_encoder_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    from polydistill.config import load_config
    from polydistill.models.pooling import encoder_function
    from polydistill.training.run import run

    for name, rows in (("train", parallel_rows(400, 1)), ("test", parallel_rows(60, 2))):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "run.yaml").write_text(CONFIG.format(teacher=tiny_encoder_dir))
    config = load_config(tmp_path / "run.yaml")
    result = run(config, output_dir=tmp_path / "out")

    metrics = result.metrics
    assert metrics["task"] == "embeddings"
    french = metrics["languages"]["fr"]
    # the teacher cannot read the made-up language; the student learnt to map it onto the teacher's space
    assert french["student"]["top1_x_to_en"] >= 0.8 > french["teacher"]["top1_x_to_en"]
    assert (tmp_path / "out" / "report.html").is_file()

    texts = ["we saw the apple today", "many train with few drum"]
    saved = SentenceTransformer(str(result.student_dir), device="cpu").encode(texts, normalize_embeddings=True)
    from transformers import AutoModel, AutoTokenizer

    in_memory = encoder_function(
        AutoModel.from_pretrained(result.student_dir), AutoTokenizer.from_pretrained(result.student_dir), prefix="query: ", max_length=32
    )(texts)
    assert np.allclose(saved, in_memory, atol=1e-5)
