"""Training speed of polydistill against the recipes a user would otherwise pick, at equal quality.

On one machine and in one run, on the same teacher, the same student initialisation, the same
data, batch size, learning rate and number of epochs:

(a)  polydistill with the teacher-output cache, built fresh inside the timed region;
(a') polydistill again, reusing the cache (what every later run or hyperparameter trial sees);
(b)  polydistill with the online teacher (``teacher.cache: false``);
(c)  the peer recipe: for classification a plain ``transformers.Trainer`` with a hand-written KD
     loss (the same soft- and hard-target terms and weights as the recipe); for embeddings
     sentence-transformers' multilingual distillation recipe (teacher embeddings precomputed with
     ``teacher.encode``, ``MSELoss``, ``SentenceTransformerTrainer``). polydistill's embeddings
     recipe adds an in-batch similarity term; for a like-for-like comparison (a) also runs with
     ``embedding_mse`` alone.

Each method runs in a fresh subprocess of this script (``--child``), so its peak memory
(``getrusage(RUSAGE_SELF).ru_maxrss``: load + train, read before evaluation) is its own. Every
student is then evaluated the same way from the directory it saved: per-language macro-F1 on the
recipe's test split (classification) or top-1 translation retrieval (embeddings), with a paired
bootstrap over the test examples for the quality difference to the peer.

    python benchmarks/distill_speed.py --task both --languages de,ja,ar --epochs 3 --out runs/distill-speed
    python benchmarks/distill_speed.py --quick          # a few steps, one language: checks the script

Results: a table on the terminal and ``OUT/results.json``; per method ``OUT/<task>/<method>/``
holds its log, ``result.json`` and the trained student.

The rooms: ``settings`` (methods, settings, recipes), ``prepare`` (teacher and student
initialisation), one ``method_*`` module per method with ``measure`` (what each records),
``quality`` (evaluation), ``padding``, ``statistics`` (bootstrap), ``tables`` (results) and
``main`` (the parent process that spawns one child per step).
"""
