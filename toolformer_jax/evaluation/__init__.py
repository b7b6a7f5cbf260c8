"""Evaluation: eval items (ASDiv and seeded, versioned generators), the metrics that score
outputs and their tool calls, and the report over several t5x.eval runs.

  items.py        EvalItem, task families and names, seeded item streams, prompt formats
  registry.py     the generator registry: register, generators(), get(), generate();
                  GENERATOR_MODULES lists the generator modules (imported on first use)
  math_items.py   math word problems (own templates, reasoning-gym)
  asdiv.py        the ASDiv reader (the user's copy; CC BY-NC, never bundled)
  benchmarks.py   the paper's benchmarks by name, from their published files: prompt,
                  metric, the paper's figure; readers in benchmark_formats.py, their file
                  layer in benchmark_files.py
  fact_items.py   geography and Wikipedia-lead facts, questions, Spanish/French questions
  date_items.py   Dateset-style questions relative to today
  metrics.py      answer matching and per-example calls; the seqio metric fn
  report.py       `python -m toolformer_jax.report`

The SeqIO tasks over these live in toolformer_tasks/eval_tasks.py (`toolformer_tasks`). This package
imports without TensorFlow, seqio or t5x. Module-level imports go one way only: generator
modules -> registry -> items -> metrics (tests/evaluation/test_import_graph.py).
"""
