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

`--lora` prints instead full fine-tuning versus LoRA (gin/models/lora.gin, ranks
`--lora_ranks`, default 8 and 64) side by side, as real `python -m t5x.train` runs of
runs/finetune_toolformer.gin from the same initial checkpoint on the same data (the LM task,
seed 0) for the same number of steps, on the ~125M GPT-J (random initialisation: no
pretrained GPT-J of that size ships offline) and SmolLM2-135M (its pretrained gguf):
trainable parameters, optimizer-state bytes and checkpoint bytes (read from the t5x
checkpoint written at the last step), step time (median of t5x's own per-step timing over
steps 2.., compilation excluded), and the held-out perplexity of t5x's train-eval at the
last step. Learning rates are each method's defaults (full: the paper's 1e-5; LoRA:
lora.gin's 1e-4). GPT-J 6B follows on paper: the same byte columns from the parameter
shapes (float32 parameters and AdamW moments as gin/models/gptj_6b.gin stores them) and
model FLOPs per token (6N for full fine-tuning; LoRA skips the frozen weights' weight
gradients: ~4N + 6 N_adapters).

  python benchmarks/train.py --lora                # ~125M GPT-J and SmolLM2-135M, batch 2 x 64
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
from typing import Optional

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


# --- LoRA versus full fine-tuning -------------------------------------------------------------
LORA_MODELS = ("gptj_125m", "smollm2_135m")


def _network_from_gin(model: str, lora_rank: int = 0):
  """The network of gin/models/<model>.gin + lora.gin with LORA_RANK (0: the plain one)."""
  import gin  # pylint: disable=g-import-not-at-top
  from toolformer_jax.networks import lora  # pylint: disable=g-import-not-at-top
  gin.add_config_file_search_path(str(REPO / "gin"))
  files = [str(REPO / "gin" / "models" / f"{model}.gin"),
           str(REPO / "gin" / "models" / "lora.gin")]
  with gin.unlock_config():
    gin.clear_config()
    gin.parse_config_files_and_bindings(files, ["TRAIN_STEPS = None",
                                                f"LORA_RANK = {lora_rank}"],
                                        finalize_config=False)
    network = gin.get_configurable(lora.adapt)()
    gin.clear_config()
  return network


def _param_shapes(network):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  tokens = jax.ShapeDtypeStruct((1, 1), jnp.int32)
  return jax.eval_shape(lambda t: network.init(jax.random.PRNGKey(0), t, t,
                                               enable_dropout=False), tokens)["params"]


def _initial_checkpoint(model: str, work_dir: str) -> str:
  """A t5x checkpoint of the base model: SmolLM2's gguf, or a random GPT-J initialisation."""
  out = os.path.join(work_dir, f"{model}_init")
  if model.startswith("smollm2"):
    from toolformer_jax import convert  # pylint: disable=g-import-not-at-top
    return convert.convert("t5x", "smollm2", out)
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from toolformer_jax.checkpoints import t5x_export  # pylint: disable=g-import-not-at-top
  network = _network_from_gin(model)
  tokens = jnp.ones((1, 8), jnp.int32)
  params = jax.jit(lambda: network.init(jax.random.PRNGKey(0), tokens, tokens,
                                        enable_dropout=False)["params"])()
  return t5x_export.save_t5x_checkpoint(jax.tree.map(np.asarray, params), network, out)


def _dir_bytes(path: str) -> int:
  return sum(os.path.getsize(os.path.join(root, f))
             for root, _, files in os.walk(path) for f in files)


def _optimizer_state_bytes(checkpoint_dir: str) -> int:
  """Bytes of the optimizer state (state/param_states/...) a t5x checkpoint holds."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  with ocp.PyTreeCheckpointer() as checkpointer:
    metadata = checkpointer.metadata(os.path.join(checkpoint_dir, "state"))
  tree = getattr(metadata, "item_metadata", metadata)
  tree = getattr(tree, "tree", tree)
  total = 0
  for path, leaf in traverse_util.flatten_dict(tree).items():
    if path[:2] == ("state", "param_states"):
      total += int(np.prod(leaf.shape)) * np.dtype(leaf.dtype).itemsize
  return total


def _read_event_scalars(directory: str, tag: str) -> dict:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  values = {}
  for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for value in event.summary.value:
        if value.tag == tag:
          values[event.step] = float(tf.make_ndarray(value.tensor))
  return values


def lora_run(model: str, rank: int, initial_checkpoint: str, args, work_dir: str) -> dict:
  """One `python -m t5x.train` run (rank 0: full fine-tuning); its measured columns."""
  name = f"{model}_{'full' if rank == 0 else f'lora{rank}'}"
  model_dir = os.path.join(work_dir, name)
  steps = args.lora_steps
  bindings = {
      "MODEL_DIR": repr(model_dir), "INITIAL_CHECKPOINT_PATH": repr(initial_checkpoint),
      "TASK_FEATURE_LENGTHS": f"{{'targets': {args.seq_len}}}", "BATCH_SIZE": str(args.batch),
      "TRAIN_STEPS": str(steps), "EVAL_PERIOD": str(steps), "EVAL_STEPS": str(args.eval_steps),
      "train.stats_period": "1", "train.infer_eval_dataset_cfg": "None",
      "train.run_eval_before_training": "False",
  }
  gin_files = ["runs/finetune_toolformer.gin", f"models/{model}.gin"]
  if rank:
    gin_files.append("models/lora.gin")
    bindings["LORA_RANK"] = str(rank)
  cmd = [sys.executable, "-m", "t5x.train", f"--gin_search_paths={REPO / 'gin'}",
         *(f"--gin_file={f}" for f in gin_files),
         *(f"--gin.{k}={v}" for k, v in bindings.items())]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")
  log_path = os.path.join(work_dir, f"{name}.log")
  start = time.time()
  with open(log_path, "w") as log:
    proc = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env,
                          check=False)
  if proc.returncode != 0:
    raise RuntimeError(f"t5x.train failed ({proc.returncode}); see {log_path}")
  rates = _read_event_scalars(os.path.join(model_dir, "train"), "timing/steps_per_second")
  timed = [rates[s] for s in range(2, steps + 1) if s in rates]
  if not timed:
    raise RuntimeError(f"no per-step timings in {model_dir}/train")
  perplexity = None  # the held-out LM task's name depends on the vocabulary
  for eval_dir in glob.glob(os.path.join(model_dir, "training_eval", "*")):
    perplexity = _read_event_scalars(eval_dir, "perplexity").get(steps, perplexity)
  checkpoint = os.path.join(model_dir, f"checkpoint_{steps}")
  trainable, total = _trainable(_network_from_gin(model, rank))
  return dict(model=model, method="full" if rank == 0 else f"LoRA r={rank}",
              trainable=trainable, total=total,
              optimizer_bytes=_optimizer_state_bytes(checkpoint),
              checkpoint_bytes=_dir_bytes(checkpoint),
              step_seconds=1.0 / statistics.median(timed), perplexity=perplexity,
              wall_seconds=time.time() - start)


def _trainable(network) -> tuple:
  """(trainable parameters, all parameters) of a network for its fine-tuning method."""
  from toolformer_jax.networks import lora  # pylint: disable=g-import-not-at-top
  adapters, frozen = lora.count(_param_shapes(network))
  return (adapters if network.config.lora_rank else frozen), adapters + frozen


def on_paper(model: str, rank: int, frozen_dtype: Optional[str] = None) -> dict:
  """The byte and FLOP columns of a model from its parameter shapes alone.

  frozen_dtype: store the frozen weights of a LoRA model in this dtype (default: the model
  file's param_dtype).
  """
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  network = _network_from_gin(model, rank)
  trainable, total = _trainable(network)
  frozen_size = jnp.dtype(frozen_dtype or network.config.param_dtype).itemsize
  if rank:  # adapters in lora_param_dtype, frozen weights in param_dtype
    param_bytes = ((total - trainable) * frozen_size +
                   trainable * jnp.dtype(network.config.lora_param_dtype).itemsize)
  else:
    param_bytes = total * frozen_size
  optimizer_bytes = 2 * 4 * trainable  # AdamW's float32 mu and nu
  method = "full" if rank == 0 else f"LoRA r={rank}"
  if frozen_dtype and rank:
    method += f" ({frozen_dtype.replace('float', 'f').replace('bfloat', 'bf')} frozen)"
  return dict(model=model, method=method,
              trainable=trainable, total=total, optimizer_bytes=optimizer_bytes,
              checkpoint_bytes=param_bytes + optimizer_bytes,
              flops_per_token=_flops_per_token(total, trainable, rank))


def _flops_per_token(total: int, trainable: int, rank: int) -> float:
  """Training FLOPs per token, 2N forward + 2N activation gradients + 2N weight gradients
  for full fine-tuning; LoRA drops the frozen weights' weight gradients (embedding lookups
  included in N, as the usual 6N estimate does)."""
  if rank == 0:
    return 6.0 * total
  return 4.0 * (total - trainable) + 6.0 * trainable


def _format_bytes(n: float) -> str:
  for unit in ("B", "KB", "MB", "GB"):
    if n < 1000 or unit == "GB":
      return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
    n /= 1000.0
  return f"{n:.1f} GB"


def print_lora_table(rows, paper_rows) -> None:
  header = (f"{'model':<14}{'method':<22}{'trainable':>12}{'% of all':>9}{'optimizer state':>17}"
            f"{'checkpoint':>12}{'step (s)':>10}{'vs full':>8}{'held-out ppl':>14}")
  print(header)
  full = {r["model"]: r for r in rows if r["method"] == "full"}
  for r in rows:
    base = full.get(r["model"])
    ratio = f"{r['step_seconds'] / base['step_seconds']:.2f}x" if base else ""
    ppl = f"{r['perplexity']:.2f}" if r["perplexity"] is not None else "n/a"
    print(f"{r['model']:<14}{r['method']:<22}{r['trainable']:>12,}"
          f"{100.0 * r['trainable'] / r['total']:>8.2f}%"
          f"{_format_bytes(r['optimizer_bytes']):>17}{_format_bytes(r['checkpoint_bytes']):>12}"
          f"{r['step_seconds']:>10.2f}{ratio:>8}{ppl:>14}")
  if paper_rows:
    print("on paper (parameter shapes; float32 parameters and AdamW moments; checkpoint = "
          "parameters + optimizer state):")
    print(f"{'model':<14}{'method':<22}{'trainable':>12}{'% of all':>9}{'optimizer state':>17}"
          f"{'checkpoint':>12}{'train GFLOP/token':>19}")
    for r in paper_rows:
      print(f"{r['model']:<14}{r['method']:<22}{r['trainable']:>12,}"
            f"{100.0 * r['trainable'] / r['total']:>8.3f}%"
            f"{_format_bytes(r['optimizer_bytes']):>17}"
            f"{_format_bytes(r['checkpoint_bytes']):>12}"
            f"{r['flops_per_token'] / 1e9:>19.1f}")


def lora_main(args) -> int:
  import jax  # pylint: disable=g-import-not-at-top
  ranks = [int(r) for r in args.lora_ranks.split(",") if r]
  models = [m for m in args.lora_models.split(",") if m]
  print(f"benchmark: full fine-tuning vs LoRA (ranks {ranks}) with python -m t5x.train, "
        f"{args.lora_steps} steps of batch {args.batch} x {args.seq_len} tokens, held-out "
        f"perplexity over {args.eval_steps} eval batches, float32, {jax.default_backend()} "
        f"({jax.device_count()} x {jax.devices()[0].device_kind}, {os.cpu_count()} CPU cores)")
  rows = []
  start = time.time()
  with tempfile.TemporaryDirectory(prefix="bench_lora_") as work_dir:
    for model in models:
      checkpoint = _initial_checkpoint(model, work_dir)
      for rank in [0] + ranks:
        row = lora_run(model, rank, checkpoint, args, work_dir)
        rows.append(row)
        print(f"  {model} {row['method']}: {row['wall_seconds']:.0f} s", flush=True)
  paper = ([on_paper("gptj_6b", rank) for rank in [0] + ranks] +
           [on_paper("gptj_6b", ranks[0], frozen_dtype="bfloat16")]
           if args.lora_paper and ranks else [])
  print_lora_table(rows, paper)
  for model in models:
    full = next(r for r in rows if r["model"] == model and r["method"] == "full")
    for r in rows:
      if r["model"] == model and r is not full:
        print(f"benchmark: {model} {r['method']} / full: trainable "
              f"{r['trainable'] / full['trainable']:.4f}x, optimizer state "
              f"{r['optimizer_bytes'] / full['optimizer_bytes']:.4f}x, checkpoint "
              f"{r['checkpoint_bytes'] / full['checkpoint_bytes']:.2f}x, step time "
              f"{r['step_seconds'] / full['step_seconds']:.2f}x")
  print(f"benchmark: {len(rows)} t5x.train runs in {time.time() - start:.0f} s")
  return 0


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--model", default="gptj_125m", help="a gin/models/gptj_*.gin name")
  parser.add_argument("--batch", type=int, default=None, help="default 4 (--lora: 2)")
  parser.add_argument("--seq_len", type=int, default=None, help="default 128 (--lora: 64)")
  parser.add_argument("--steps", type=int, default=5, help="timed steps per framework")
  parser.add_argument("--peak_tflops", type=float, default=None,
                      help="chip peak for MFU on accelerators (default: known-chip table)")
  parser.add_argument("--skip_torch", action="store_true", help="t5x only (e.g. on TPU)")
  parser.add_argument("--malloc_hugetlb", action=argparse.BooleanOptionalAction, default=True,
                      help="run both frameworks with GLIBC_TUNABLES=glibc.malloc.hugetlb=1")
  parser.add_argument("--lora", action="store_true",
                      help="full fine-tuning vs LoRA instead (see the module docstring)")
  parser.add_argument("--lora_models", default=",".join(LORA_MODELS),
                      help="comma-separated gin/models names for --lora")
  parser.add_argument("--lora_ranks", default="8,64", help="comma-separated LoRA ranks")
  parser.add_argument("--lora_steps", type=int, default=6,
                      help="fine-tuning steps per --lora run")
  parser.add_argument("--eval_steps", type=int, default=2,
                      help="held-out eval batches per --lora run")
  parser.add_argument("--lora_paper", action=argparse.BooleanOptionalAction, default=True,
                      help="add GPT-J 6B on paper to the --lora table")
  args = parser.parse_args(argv)
  tunables = os.environ.get("GLIBC_TUNABLES", "")
  if args.malloc_hugetlb and "glibc.malloc.hugetlb" not in tunables:
    env = dict(os.environ, GLIBC_TUNABLES=":".join(filter(None, [tunables,
                                                                 HUGETLB_TUNABLE])))
    argv = sys.argv[1:] if argv is None else list(argv)
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *argv], env)

  if args.lora:
    if args.batch is None and args.seq_len is None:  # short defaults for six t5x.train runs
      args.batch, args.seq_len = 2, 64
    args.batch, args.seq_len = args.batch or 4, args.seq_len or 128
    return lora_main(args)
  args.batch, args.seq_len = args.batch or 4, args.seq_len or 128
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
