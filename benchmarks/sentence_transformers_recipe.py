"""The classic sentence-transformers recipe for a smaller multilingual student, measured the way
polydistill measures its embeddings demo, so the two can stand side by side (issue 14).

The recipe is Reimers & Gurevych (2020), "Making Monolingual Sentence Embeddings Multilingual using
Knowledge Distillation", as sentence-transformers' own examples write it with its v5+ trainer
(``examples/sentence_transformer/training/distillation/model_distillation_layer_reduction.py`` for the
student, the multilingual example for the data): the student is the teacher with only some of its
layers kept (full vocabulary, mean pooling, normalised), trained with ``losses.MSELoss`` so that both
an English source and its translation land on the teacher's embedding of the English source, which is
the dataset's ``label`` column. Teacher: multilingual-e5-small as polydistill builds it offline;
every input carries e5's ``"query: "`` prefix (the trainer's ``prompts``), as in
``recipes/demo-embeddings.yaml``.

Data and evaluation are polydistill's: training on the English/translation pairs of the Django
catalogs' train split in the demo's 12 languages; translation retrieval (top-1, English to target
and back) with :func:`polydistill.evaluation.retrieval.evaluate_embeddings`, on the held-out domain
(every pair of Sphinx's catalogs, regional tags folded: uk-UA -> uk) and on the Django test split.
Both models are embedded with polydistill's own :func:`~polydistill.models.pooling.encoder_function`
(max_length 64); the script checks first that it gives the student's ``SentenceTransformer.encode``.
Retention = student / teacher top-1, both directions summed, per language.

    python benchmarks/sentence_transformers_recipe.py                       # 4 layers 0,4,8,11; 3 epochs
    python benchmarks/sentence_transformers_recipe.py --layers 0,6,11 --out runs/st-recipe-3layers.json
    python benchmarks/sentence_transformers_recipe.py --limit 200 --epochs 1 --eval-limit 20   # a quick check

One process, torch's default threads (``--threads`` to set them); run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

LANGUAGES = ["de", "fr", "es", "pt-BR", "ru", "uk", "ar", "hi", "ja", "zh-Hans", "ko", "sw"]
"""The embeddings demo's translation languages (English is the pivot)."""
PREFIX = "query: "
MAX_LENGTH = 64
TEACHER = "offline:multilingual-e5-small"
STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", flush=True)


def training_pairs(limit: int | None, seed: int) -> Any:
    """English source and translation of the Django train split, the demo's languages (a seeded sample of ``limit`` pairs)."""
    from polydistill.data.catalogs import catalog_pairs_splits

    pairs = catalog_pairs_splits("django", languages=LANGUAGES)["train"]
    if limit is not None and limit < len(pairs):
        pairs = pairs.shuffle(seed=seed).select(range(limit))
    return pairs


def heldout_pairs(origin: str) -> Any:
    """Every pair of one catalog origin in the served languages, regional tags folded onto a served
    bare code (uk-UA -> uk), as ``benchmarks/general_vocabulary.py`` reads the held-out domain."""
    import datasets

    from polydistill.data.catalogs import catalog_pairs
    from polydistill.data.columns import dataset_from_columns

    columns: dict[str, list[str]] = {"text": [], "translation": [], "lang": []}
    pairs = catalog_pairs(origin)
    for text, translation, lang in zip(pairs["text"], pairs["translation"], pairs["lang"], strict=True):
        served = next((code for code in LANGUAGES if lang == code or lang.split("-")[0] == code and "-" not in code), None)
        if served is not None:
            columns["text"].append(text)
            columns["translation"].append(translation)
            columns["lang"].append(served)
    return dataset_from_columns(columns, datasets.Features({name: datasets.Value("string") for name in columns}))


def per_language_sample(pairs: Any, limit: int | None, seed: int) -> Any:
    """At most ``limit`` pairs of each language (a seeded sample), for a quick check."""
    if limit is None:
        return pairs
    rng = np.random.default_rng(seed)
    rows: dict[str, list[int]] = {}
    for index, lang in enumerate(pairs["lang"]):
        rows.setdefault(lang, []).append(index)
    keep = sorted(i for indices in rows.values() for i in (indices if len(indices) <= limit else rng.choice(indices, limit, replace=False)))
    return pairs.select(keep)


def build_student(teacher_dir: Path, layers: list[int]):
    """The teacher as a SentenceTransformer with only ``layers`` kept (sentence-transformers' layer-reduction recipe)."""
    import torch
    from sentence_transformers import SentenceTransformer

    student = SentenceTransformer(str(teacher_dir))
    auto_model: Any = student[0].auto_model  # a transformers BertModel
    if max(layers) >= len(auto_model.encoder.layer):
        raise SystemExit(f"--layers {layers}: the teacher has {len(auto_model.encoder.layer)} layers")
    auto_model.encoder.layer = torch.nn.ModuleList([layer for i, layer in enumerate(auto_model.encoder.layer) if i in layers])
    auto_model.config.num_hidden_layers = len(layers)
    student.max_seq_length = MAX_LENGTH
    return student


def parameters(model) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def with_teacher_labels(pairs: Any, teacher) -> Any:
    """The trainer's dataset: (english, non_english, label = teacher's embedding of english); each distinct English string embedded once."""
    from datasets import Dataset

    english = sorted(set(pairs["text"]))
    vectors = teacher.encode(english, prompt=PREFIX, batch_size=128, convert_to_numpy=True, show_progress_bar=False)
    row = {text: index for index, text in enumerate(english)}
    labels = vectors[[row[text] for text in pairs["text"]]]
    return Dataset.from_dict({"english": list(pairs["text"]), "non_english": list(pairs["translation"]), "label": labels.tolist()})


def train(student, dataset: Any, args: argparse.Namespace) -> float:
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer import losses

    with tempfile.TemporaryDirectory(prefix="st-recipe-") as output_dir:
        training_args = SentenceTransformerTrainingArguments(
            output_dir=output_dir,
            num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.lr,
            warmup_steps=args.warmup,
            prompts=PREFIX,  # on every column: the English source and the translation
            seed=args.seed,
            data_seed=args.seed,
            save_strategy="no",
            logging_steps=args.logging_steps,
            report_to="none",
            disable_tqdm=True,
        )
        trainer = SentenceTransformerTrainer(model=student, args=training_args, train_dataset=dataset, loss=losses.MSELoss(model=student))
        started = time.perf_counter()
        trainer.train()
        return time.perf_counter() - started


def polydistill_encoder(model):
    """polydistill's embedding of a SentenceTransformer's transformer: prefix, mean pooling, L2 norm, max_length 64."""
    from polydistill.models.pooling import encoder_function

    return encoder_function(model[0].auto_model, model[0].tokenizer, prefix=PREFIX, max_length=MAX_LENGTH)


def check_same_embeddings(model, texts: list[str]) -> float:
    """Lowest cosine between the model's own ``encode`` and polydistill's encoder on ``texts`` (should be ~1)."""
    own = model.encode(texts, prompt=PREFIX, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    ours = polydistill_encoder(model)(texts)
    return float(np.min(np.sum(own * ours, axis=1)))


def top1_both(metrics: dict[str, float]) -> float:
    return (metrics["top1_en_to_x"] + metrics["top1_x_to_en"]) / 2


def summarise(quality: dict[str, Any]) -> dict[str, Any]:
    """Per language: pairs, teacher and student top-1 (mean of both directions), retention; and their mean and worst."""
    rows = {
        lang: {
            "n": entry["n"],
            "teacher_top1": top1_both(entry["teacher"]),
            "student_top1": top1_both(entry["student"]),
            "retention": top1_both(entry["student"]) / max(1e-9, top1_both(entry["teacher"])),
        }
        for lang, entry in quality["languages"].items()
    }
    worst = min(rows, key=lambda lang: rows[lang]["retention"])
    return {
        "languages": rows,
        "mean_retention": statistics.mean(row["retention"] for row in rows.values()),
        "worst_retention": rows[worst]["retention"],
        "worst_language": worst,
        "spearman_teacher_similarity": quality["overall"]["student"].get("spearman_teacher_similarity"),
    }


def print_table(name: str, summary: dict[str, Any]) -> None:
    print(f"\n{name}: translation retrieval top-1 (mean of en->x and x->en)")
    print("| language | pairs | teacher | student | retention |\n|---|---|---|---|---|")
    for lang, row in summary["languages"].items():
        print(f"| {lang} | {row['n']} | {row['teacher_top1']:.3f} | {row['student_top1']:.3f} | {row['retention']:.1%} |")
    spearman = summary["spearman_teacher_similarity"]
    print(
        f"mean retention {summary['mean_retention']:.1%}, worst {summary['worst_retention']:.1%} ({summary['worst_language']}); "
        f"English similarity Spearman vs teacher {'n/a' if spearman is None else f'{spearman:.3f}'}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", default="0,4,8,11", help="teacher layers the student keeps (default 0,4,8,11; the demo keeps 0,6,11)")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=0.06, help="warmup steps, or a fraction of them under 1 (the demo's 0.06)")
    parser.add_argument("--limit", type=int, help="train on a seeded sample of this many pairs (a quick check)")
    parser.add_argument("--eval-limit", type=int, help="evaluate on at most this many pairs per language (a quick check)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--logging-steps", type=int, default=50)
    parser.add_argument("--save", type=Path, help="also save the trained student (a sentence-transformers directory) here")
    parser.add_argument("--out", type=Path, default=Path("runs/st-recipe.json"))
    args = parser.parse_args()
    layers = sorted({int(part) for part in args.layers.split(",")})

    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import set_seed

    from polydistill.data.catalogs import catalog_pairs_splits
    from polydistill.evaluation.retrieval import evaluate_embeddings
    from polydistill.models.zoo import resolve_model_path

    if args.threads:
        torch.set_num_threads(args.threads)
    set_seed(args.seed)
    log(f"torch threads {torch.get_num_threads()}, device {'cuda' if torch.cuda.is_available() else 'cpu'}")

    teacher_dir = resolve_model_path(TEACHER)
    teacher = SentenceTransformer(str(teacher_dir))
    teacher.max_seq_length = MAX_LENGTH
    student = build_student(teacher_dir, layers)
    sizes = {"teacher": parameters(teacher), "student": parameters(student)}
    log(
        f"teacher {sizes['teacher']:,} parameters; student (layers {layers}, full vocabulary) {sizes['student']:,} "
        f"({sizes['student'] / sizes['teacher']:.1%})"
    )

    pairs = training_pairs(args.limit, args.seed)
    dataset = with_teacher_labels(pairs, teacher)
    log(f"{len(dataset):,} training pairs ({len(set(pairs['text'])):,} distinct English sources) labelled by the teacher")
    train_seconds = train(student, dataset, args)
    log(f"trained in {train_seconds:.0f}s")
    if args.save:
        student.save(str(args.save))
        log(f"student saved to {args.save}")

    eval_sets = {
        "sphinx (held-out domain)": heldout_pairs("sphinx"),
        "django test (in domain)": catalog_pairs_splits("django", languages=LANGUAGES)["test"],
    }
    teacher_encode, student_encode = polydistill_encoder(teacher), polydistill_encoder(student)
    sample = list(eval_sets["sphinx (held-out domain)"]["translation"][:16])
    agreement = {"teacher": check_same_embeddings(teacher, sample), "student": check_same_embeddings(student, sample)}
    log(
        f"SentenceTransformer.encode vs polydistill's encoder, lowest cosine: teacher {agreement['teacher']:.6f}, student {agreement['student']:.6f}"
    )

    results: dict[str, Any] = {}
    for name, eval_pairs in eval_sets.items():
        eval_pairs = per_language_sample(eval_pairs, args.eval_limit, args.seed)
        started = time.perf_counter()
        quality = evaluate_embeddings(student_encode, eval_pairs, teacher_encode=teacher_encode)
        log(f"{name}: {len(eval_pairs):,} pairs evaluated in {time.perf_counter() - started:.0f}s")
        results[name] = {"summary": summarise(quality), "metrics": quality}
        print_table(name, results[name]["summary"])

    report = {
        "recipe": "sentence-transformers MSELoss multilingual distillation (Reimers & Gurevych 2020), layer-reduced teacher as student",
        "teacher": TEACHER,
        "layers": layers,
        "parameters": sizes | {"student_share": sizes["student"] / sizes["teacher"]},
        "settings": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
        "train_pairs": len(dataset),
        "train_seconds": round(train_seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "encode_agreement_min_cosine": agreement,
        "sentence_transformers": sentence_transformers.__version__,
        "eval": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"written {args.out}")


if __name__ == "__main__":
    main()
