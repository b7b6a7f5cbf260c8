r"""Training throughput of `python -m t5x.train` (project gin files) vs transformers PyTorch.

Both train the same GPT-J configuration (default gin/models/gptj_125m.gin, ~163M parameters
with the 50400-row embedding and lm_head) with AdamW, gradient clipping at 1.0, float32, on
the same batch size and sequence length, on this machine's CPU, one after the other:

* t5x: a real `python -m t5x.train` run of runs/finetune_toolformer.gin from scratch on the
  LM task (packed sequences, no eval, no checkpoints) for `--steps + 1` steps with
  `stats_period = 1`; the figure is the median of t5x's own per-step
  `timing/target_tokens_per_second` over steps 2.. (compilation happens before the loop;
  step 1 absorbs the input-pipeline warm-up).
* bare JAX: the same network, loss and AdamW + clipping as one jitted, donated step on
  random tokens, without t5x (separates the model's step time from t5x's per-step work).
* PyTorch: `GPTJForCausalLM` with `torch.optim.AdamW` and `clip_grad_norm_` on random
  token batches; the median over `--steps` timed steps after one warm-up step.
Medians, because other processes on a small shared machine make single steps noisy.

Allocator: both frameworks run with glibc's malloc backed by transparent huge pages
(`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, set by re-executing this script; glibc >= 2.35,
ignored elsewhere; `--no-malloc_hugetlb` turns it off). XLA:CPU allocates fresh buffers for
large arrays every step, and on this 2-core VM huge pages cut the page-fault cost of that
by ~15-20% (t5x: 151 -> 182 tokens/s; PyTorch's caching allocator is unaffected: 168 both).

On an accelerator backend it also reports the model-FLOPs utilisation of the t5x run
(6 * parameters * tokens/s over the chip's peak, `--peak_tflops` or a table of known chips).

  python benchmarks/train.py                       # ~125M, batch 4 x 128, CPU
  python benchmarks/train.py --model gptj_tiny     # quick check
"""
from __future__ import annotations

import argparse
import functools
import glob
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]

# bf16 dense peak TFLOP/s per chip, for MFU on accelerators.
PEAK_TFLOPS = {"TPU v4": 275.0, "TPU v5 lite": 197.0, "TPU v5e": 197.0, "TPU v5p": 459.0,
               "NVIDIA H100": 989.0, "NVIDIA H200": 989.0, "NVIDIA A100": 312.0}


HUGETLB_TUNABLE = "glibc.malloc.hugetlb=1"


def gin_config(model: str):
  """The GPTJConfig bound by gin/models/<model>.gin."""
  import gin  # pylint: disable=g-import-not-at-top
  from toolformer_jax.networks import gptj  # pylint: disable=g-import-not-at-top
  gin.add_config_file_search_path(str(REPO / "gin"))
  gin.parse_config_files_and_bindings([str(REPO / "gin" / "models" / f"{model}.gin")],
                                      ["TRAIN_STEPS = None"], finalize_config=False)
  config = gin.get_configurable(gptj.GPTJConfig)()
  gin.clear_config()
  return config


def t5x_tokens_per_second(model: str, batch: int, seq_len: int, steps: int,
                          work_dir: str) -> float:
  """Median per-step target tokens/s of `python -m t5x.train` over steps 2..steps+1."""
  model_dir = os.path.join(work_dir, "t5x_model")
  bindings = {
      "MODEL_DIR": repr(model_dir), "INITIAL_CHECKPOINT_PATH": "None",
      "TASK_FEATURE_LENGTHS": f"{{'targets': {seq_len}}}", "BATCH_SIZE": str(batch),
      "TRAIN_STEPS": str(steps + 1), "train.stats_period": "1",
      "train.train_eval_dataset_cfg": "None", "train.infer_eval_dataset_cfg": "None",
      "train.run_eval_before_training": "False", "utils.CheckpointConfig.save": "None",
  }
  cmd = [sys.executable, "-m", "t5x.train", f"--gin_search_paths={REPO / 'gin'}",
         "--gin_file=runs/finetune_toolformer.gin", f"--gin_file=models/{model}.gin",
         *(f"--gin.{k}={v}" for k, v in bindings.items())]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")
  log_path = os.path.join(work_dir, "t5x_train.log")
  with open(log_path, "w") as log:
    proc = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env,
                          check=False)
  if proc.returncode != 0:
    raise RuntimeError(f"t5x.train failed ({proc.returncode}); see {log_path}")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  values = {}
  for path in glob.glob(os.path.join(model_dir, "train", "events.out.tfevents.*")):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for value in event.summary.value:
        if value.tag == "timing/target_tokens_per_second":
          values[event.step] = float(tf.make_ndarray(value.tensor))
  timed = [values[s] for s in range(2, steps + 2) if s in values]
  if len(timed) != steps:
    raise RuntimeError(f"expected per-step timings of steps 2..{steps + 1} in {model_dir}, "
                       f"got steps {sorted(values)}")
  return float(statistics.median(timed))


def torch_tokens_per_second(config, batch: int, seq_len: int, steps: int) -> float:
  """Median per-step tokens/s of transformers GPTJForCausalLM + AdamW on the same shapes."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  torch.set_num_threads(os.cpu_count() or 1)
  hf_config = transformers.GPTJConfig(
      vocab_size=config.vocab_size, n_positions=max(seq_len, config.max_positions),
      n_embd=config.d_model, n_layer=config.num_layers, n_head=config.num_heads,
      rotary_dim=config.rotary_dim, n_inner=config.d_ff,
      layer_norm_epsilon=config.layer_norm_eps)
  model = transformers.GPTJForCausalLM(hf_config).train()
  optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
  generator = torch.Generator().manual_seed(0)

  def step() -> float:
    tokens = torch.randint(1, 50256, (batch, seq_len), generator=generator)
    start = time.perf_counter()
    loss = model(input_ids=tokens, labels=tokens).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    loss.item()
    return batch * seq_len / (time.perf_counter() - start)

  step()  # warm-up (allocations, first-call overheads)
  return float(statistics.median(step() for _ in range(steps)))


def bare_jax_tokens_per_second(config, batch: int, seq_len: int, steps: int) -> float:
  """The same network and AdamW (+ clipping) as one jitted step on random tokens, no t5x.

  Separates the model's own step time from t5x's per-step work (input pipeline, metrics).
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from toolformer_jax.networks import gptj  # pylint: disable=g-import-not-at-top

  module = gptj.GPTJ(config)
  tokens = jnp.asarray(np.random.default_rng(0).integers(1, 50257, (batch, seq_len)),
                       jnp.int32)  # [batch, length]
  params = jax.jit(lambda: module.init(jax.random.PRNGKey(0), tokens, tokens,
                                       enable_dropout=False)["params"])()
  optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-5))

  def loss_fn(p):
    logits = module.apply({"params": p}, tokens[:, :-1], enable_dropout=False)
    log_probs = jax.nn.log_softmax(logits)  # [batch, length - 1, vocab]
    return -jnp.take_along_axis(log_probs, tokens[:, 1:, None], -1).mean()

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(p, state):
    loss, grads = jax.value_and_grad(loss_fn)(p)
    updates, state = optimizer.update(grads, state, p)
    return optax.apply_updates(p, updates), state, loss

  state = optimizer.init(params)
  params, state, loss = step(params, state)  # compile + warm-up
  loss.block_until_ready()
  seconds = []
  for _ in range(steps):
    start = time.perf_counter()
    params, state, loss = step(params, state)
    loss.block_until_ready()
    seconds.append(time.perf_counter() - start)
  return batch * seq_len / statistics.median(seconds)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--model", default="gptj_125m", help="a gin/models/gptj_*.gin name")
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--seq_len", type=int, default=128)
  parser.add_argument("--steps", type=int, default=5, help="timed steps per framework")
  parser.add_argument("--peak_tflops", type=float, default=None,
                      help="chip peak for MFU on accelerators (default: known-chip table)")
  parser.add_argument("--skip_torch", action="store_true", help="t5x only (e.g. on TPU)")
  parser.add_argument("--malloc_hugetlb", action=argparse.BooleanOptionalAction, default=True,
                      help="run both frameworks with GLIBC_TUNABLES=glibc.malloc.hugetlb=1")
  args = parser.parse_args(argv)
  tunables = os.environ.get("GLIBC_TUNABLES", "")
  if args.malloc_hugetlb and "glibc.malloc.hugetlb" not in tunables:
    env = dict(os.environ, GLIBC_TUNABLES=":".join(filter(None, [tunables,
                                                                 HUGETLB_TUNABLE])))
    argv = sys.argv[1:] if argv is None else list(argv)
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *argv], env)

  import jax  # pylint: disable=g-import-not-at-top
  from toolformer_jax.networks import gptj  # pylint: disable=g-import-not-at-top
  config = gin_config(args.model)
  params = gptj.count_params(config)
  device = jax.devices()[0]
  print(f"benchmark: {args.model} ({params / 1e6:.0f}M parameters), batch {args.batch} x "
        f"{args.seq_len} tokens, float32 AdamW, {jax.default_backend()} "
        f"({jax.device_count()} x {device.device_kind}, {os.cpu_count()} CPU cores), "
        f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')!r}")
  with tempfile.TemporaryDirectory(prefix="bench_train_") as work_dir:
    t5x_tps = t5x_tokens_per_second(args.model, args.batch, args.seq_len, args.steps, work_dir)
  print(f"  t5x.train (JAX/XLA, gin files)   {t5x_tps:10.1f} tokens/s "
        f"(median of steps 2-{args.steps + 1}, compilation excluded)")
  if jax.default_backend() != "cpu":
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items()
                                     if device.device_kind.startswith(k)), None)
    if peak:
      mfu = 6 * params * t5x_tps / (peak * 1e12 * jax.device_count())
      print(f"  MFU (6 * params * tokens/s / peak {peak:g} TFLOP/s per chip): {mfu:.1%}")
  bare_tps = bare_jax_tokens_per_second(config, args.batch, args.seq_len, args.steps)
  print(f"  bare jitted JAX step (same model)  {bare_tps:8.1f} tokens/s "
        f"(no t5x: random tokens, no input pipeline or metrics)")
  if args.skip_torch:
    return 0
  torch_tps = torch_tokens_per_second(config, args.batch, args.seq_len, args.steps)
  print(f"  transformers PyTorch + AdamW     {torch_tps:10.1f} tokens/s "
        f"(median of {args.steps} steps after 1 warm-up)")
  print(f"benchmark: t5x / PyTorch = {t5x_tps / torch_tps:.2f}x (goal >= 1.0x); "
        f"bare JAX step / PyTorch = {bare_tps / torch_tps:.2f}x")
  return 0


if __name__ == "__main__":
  sys.exit(main())
