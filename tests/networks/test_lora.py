"""LoRA adapters on GPT-J and LLaMA: config, parameter tree, exact start, merge, sharding."""
import dataclasses
import functools
import json
import subprocess
import sys
import textwrap

from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpu_env import cpu_subprocess_env

from toolformer_jax.networks import decoder
from toolformer_jax.networks import lora
from toolformer_jax.networks.gptj import GPTJ, GPTJConfig
from toolformer_jax.networks.llama import Llama, LlamaConfig

FAMILIES = {"gptj": (GPTJ, GPTJConfig), "llama": (Llama, LlamaConfig)}


def _tokens(config, batch=2, length=12, seed=0):
  return jax.random.randint(jax.random.PRNGKey(seed), (batch, length), 1, config.vocab_size)


# Jitted: eager flax (scanned layers above all) is slow on a small machine.
def _init(module, tokens, seed=1):
  return jax.jit(lambda t: module.init(jax.random.PRNGKey(seed), t, t,
                                       enable_dropout=False))(tokens)


def _logits(module, params, tokens):
  return np.asarray(jax.jit(lambda p, t: module.apply({"params": p}, t,
                                                      enable_dropout=False))(params, tokens))


# (family, scan_layers): both families and a scanned stack; unrolled GPT-J (~5 s a test on
# 2 cores) runs in the slow suite.
CASES = [pytest.param("gptj", False, marks=pytest.mark.slow), ("llama", False), ("gptj", True)]


def _flat(tree):
  return {"/".join(k): v for k, v in traverse_util.flatten_dict(tree).items()}


@functools.lru_cache(maxsize=None)
def _adapted_from_base_cached(family, scan, lora_fields):
  return _build_adapted(family, scan, **dict(lora_fields))


def _adapted_from_base(family, scan=False, **lora_fields):
  """(base module, adapted module, base params, adapted params holding the base's weights).

  Cached (tests do not mutate the trees they get).
  """
  return _adapted_from_base_cached(family, scan, tuple(sorted(lora_fields.items())))


def _build_adapted(family, scan=False, **lora_fields):
  cls, config_cls = FAMILIES[family]
  base = cls(config_cls.from_preset("tiny", scan_layers=scan))
  adapted = lora.adapt(base, **lora_fields)
  tokens = _tokens(base.config)
  base_params = _init(base, tokens)["params"]
  adapter_params = lora.split(_init(adapted, tokens, seed=2)["params"])[1]
  return base, adapted, base_params, lora.combine(base_params, adapter_params)


def _randomise_b(params, seed=3, scale=0.5):
  """Every lora_b random (at init it is zero, which would make any merge trivially right)."""
  flat = traverse_util.flatten_dict(params)
  keys = iter(jax.random.split(jax.random.PRNGKey(seed), len(flat)))
  for path, value in flat.items():
    key = next(keys)
    if path[-1] == "lora_b":
      flat[path] = scale * jax.random.normal(key, value.shape, value.dtype)
  return traverse_util.unflatten_dict(flat)


# --- config ------------------------------------------------------------------------------
@pytest.mark.parametrize("fields,message", [
    (dict(lora_rank=-1), "lora_rank must be an int >= 0"),
    (dict(lora_rank=True), "lora_rank must be an int >= 0"),
    (dict(lora_rank=2.0), "lora_rank must be an int >= 0"),
    (dict(lora_rank=4, lora_alpha=0), "lora_alpha must be a number > 0"),
    (dict(lora_rank=4, lora_dropout=1.0), "lora_dropout must be in [0, 1)"),
    (dict(lora_rank=4, lora_dropout=-0.1), "lora_dropout must be in [0, 1)"),
    (dict(lora_rank=4, lora_targets=("query", "fc_in")), "unknown ['fc_in']"),
    (dict(lora_rank=4, lora_targets="query"), "must be a sequence of names"),
    (dict(lora_rank=4, lora_targets=("query", "query")), "duplicates"),
    (dict(lora_rank=4, lora_targets=()), "lora_targets is empty"),
    (dict(lora_rank=4, lora_param_dtype="float64"), "lora_param_dtype"),
    # tiny GPT-J: d_model 64, so rank 65 is not low-rank.
    (dict(lora_rank=65), "exceeds a side of the targeted projections"),
])
def test_bad_lora_config_fails_loudly(fields, message):
  with pytest.raises(ValueError) as e:
    GPTJConfig.from_preset("tiny", **fields)
  assert message in str(e.value)


def test_rank_limit_is_per_target():
  # tiny LLaMA: d_model 32, key/value project to 2 KV heads x 8 = 16.
  LlamaConfig.from_preset("tiny", lora_rank=20, lora_targets=("query", "mlp_in"))
  with pytest.raises(ValueError, match="'key'"):
    LlamaConfig.from_preset("tiny", lora_rank=20, lora_targets=("key",))


def test_targets_from_gin_lists_become_hashable_tuples():
  config = GPTJConfig.from_preset("tiny", lora_rank=2, lora_targets=["query", "value"])
  assert config.lora_targets == ("query", "value")
  hash(config)  # flax modules hash their config
  assert config.lora == decoder.layers.LoraSpec(rank=2, alpha=16.0)
  assert config.lora.scale == 8.0


@pytest.mark.parametrize("family,scan", CASES)
def test_rank_zero_is_todays_parameter_tree(family, scan):
  cls, config_cls = FAMILIES[family]
  config = config_cls.from_preset("tiny", scan_layers=scan)
  tokens = _tokens(config)
  plain = _init(cls(config), tokens)
  # Every other LoRA field set: still no adapters, identical tree and values.
  zero = _init(cls(dataclasses.replace(config, lora_rank=0, lora_alpha=3.0, lora_dropout=0.5,
                                       lora_targets=("query",))), tokens)
  assert jax.tree.structure(plain) == jax.tree.structure(zero)
  assert all(jax.tree.leaves(jax.tree.map(np.array_equal, plain, zero)))
  assert not any("lora" in name for name in _flat(plain["params"]))


# --- parameter tree ----------------------------------------------------------------------
@pytest.mark.parametrize("family,targets,expected", [
    ("gptj", decoder.LORA_TARGETS,
     ["attn/key", "attn/out", "attn/query", "attn/value", "mlp/fc_in", "mlp/fc_out"]),
    ("gptj", ("query", "value"), ["attn/query", "attn/value"]),
    ("llama", ("mlp_in", "mlp_out"), ["mlp/down", "mlp/gate", "mlp/up"]),
    ("llama", ("out",), ["attention/out"]),
])
def test_adapters_sit_on_the_targeted_projections(family, targets, expected):
  cls, config_cls = FAMILIES[family]
  config = config_cls.from_preset("tiny", lora_rank=4, lora_targets=targets)
  names = _flat(_init(cls(config), _tokens(config))["params"])
  owners = sorted({n.split("/", 1)[1].rsplit("/", 1)[0] for n in names
                   if n.startswith("layers_0/") and "lora" in n})
  assert owners == expected
  assert {n.rsplit("/", 1)[1] for n in names if "lora" in n} == {"lora_a", "lora_b"}


@pytest.mark.parametrize("scan", [False, True])
def test_adapter_shapes_axes_and_dtype(scan):
  config = GPTJConfig.from_preset("tiny", scan_layers=scan, lora_rank=4,
                                  param_dtype="bfloat16")
  variables = _init(GPTJ(config), _tokens(config))
  params, axes = _flat(variables["params"]), _flat(variables["params_axes"])
  prefix = "layers/block/" if scan else "layers_0/"
  lead = (config.num_layers,) if scan else ()
  lead_axes = ("layers",) if scan else ()
  cases = {  # projection: (A shape, A axes, B shape, B axes)
      "attn/query": ((64, 4), ("embed", "lora_rank"), (4, 4, 16), ("lora_rank", "heads", "kv")),
      "attn/out": ((4, 16, 4), ("heads", "kv", "lora_rank"), (4, 64), ("lora_rank", "embed")),
      "mlp/fc_in": ((64, 4), ("embed", "lora_rank"), (4, 256), ("lora_rank", "mlp")),
      "mlp/fc_out": ((256, 4), ("mlp", "lora_rank"), (4, 64), ("lora_rank", "embed")),
  }
  for proj, (a_shape, a_axes, b_shape, b_axes) in cases.items():
    name = prefix + proj
    kernel_axes = axes[f"{name}/kernel_axes"].names
    assert params[f"{name}/lora_a"].shape == lead + a_shape
    assert params[f"{name}/lora_b"].shape == lead + b_shape
    assert axes[f"{name}/lora_a_axes"].names == lead_axes + a_axes
    assert axes[f"{name}/lora_b_axes"].names == lead_axes + b_axes
    # The non-rank axes are the kernel's own (inputs for A, outputs for B).
    n_in = len(a_axes) - 1
    assert kernel_axes == lead_axes + a_axes[:-1] + b_axes[1:]
    assert kernel_axes[len(lead_axes):][:n_in] == a_axes[:-1]
    # Frozen kernels in the lower storage dtype, adapters float32; B starts at zero.
    assert params[f"{name}/kernel"].dtype == jnp.bfloat16
    assert params[f"{name}/lora_a"].dtype == params[f"{name}/lora_b"].dtype == jnp.float32
    assert not np.any(np.asarray(params[f"{name}/lora_b"]))
    assert np.std(np.asarray(params[f"{name}/lora_a"])) > 0


# --- numbers -----------------------------------------------------------------------------
@pytest.mark.parametrize("family,scan", CASES)
def test_adapted_model_starts_exactly_as_its_base(family, scan):
  base, adapted, base_params, params = _adapted_from_base(family, scan, rank=4, alpha=8.0)
  assert lora.count(params)[0] > 0
  tokens = _tokens(base.config, seed=5)
  np.testing.assert_array_equal(_logits(adapted, params, tokens),
                                _logits(base, base_params, tokens))


@pytest.mark.parametrize("family,scan", CASES)
def test_merged_params_give_the_adapted_logits(family, scan):
  _, adapted, _, params = _adapted_from_base(family, scan, rank=4, alpha=8.0)
  params = _randomise_b(params)
  tokens = _tokens(adapted.config, seed=6)
  want = _logits(adapted, params, tokens)
  plain = lora.merged_network(adapted)
  merged = lora.merge(params, alpha=adapted.config.lora_alpha, rank=4)
  assert not lora.has_adapters(merged)
  base_shapes = jax.eval_shape(lambda: plain.init(jax.random.PRNGKey(0), tokens))["params"]
  assert jax.tree.structure(base_shapes) == jax.tree.structure(merged)
  np.testing.assert_allclose(_logits(plain, merged, tokens), want, atol=1e-5, rtol=0)
  # B matters: the merge is not the base.
  assert np.abs(_logits(plain, lora.split(params)[0], tokens) - want).max() > 1e-3


def test_merge_kernel_is_w_plus_scaled_ab():
  rng = np.random.default_rng(0)
  kernel = rng.normal(size=(3, 5, 7)).astype(np.float32)  # [heads, kv, embed]
  a = rng.normal(size=(3, 5, 2)).astype(np.float32)
  b = rng.normal(size=(2, 7)).astype(np.float32)
  want = kernel + 0.25 * np.einsum("hkr,re->hke", a, b)
  np.testing.assert_allclose(lora.merge_kernel(kernel, a, b, 0.25), want, rtol=1e-6)
  stacked = lora.merge_kernel(np.stack([kernel] * 2), np.stack([a] * 2), np.stack([b] * 2), 0.25)
  np.testing.assert_allclose(stacked, np.stack([want] * 2), rtol=1e-6)
  with pytest.raises(ValueError, match="do not fit"):
    lora.merge_kernel(kernel, a, b[:1], 0.25)


def test_merge_errors():
  config = GPTJConfig.from_preset("tiny")
  params = _init(GPTJ(config), _tokens(config))["params"]
  with pytest.raises(ValueError, match="no LoRA adapters"):
    lora.merge(params, alpha=1.0)
  _, adapted, _, params = _adapted_from_base("gptj", rank=4)
  with pytest.raises(ValueError, match="rank 4, the config says 8"):
    lora.merge(params, alpha=1.0, rank=8)


def test_dropout_only_when_enabled():
  _, adapted, _, params = _adapted_from_base("gptj", rank=4, dropout=0.5)
  params = _randomise_b(params)
  tokens = _tokens(adapted.config)
  off = [_logits(adapted, params, tokens) for _ in range(2)]
  np.testing.assert_array_equal(off[0], off[1])
  dropped = jax.jit(lambda p, t, key: adapted.apply({"params": p}, t, enable_dropout=True,
                                                    rngs={"dropout": key}))
  on = [dropped(params, tokens, jax.random.PRNGKey(i)) for i in range(2)]
  assert np.abs(np.asarray(on[0]) - np.asarray(on[1])).max() > 1e-4
  assert np.abs(np.asarray(on[0]) - np.asarray(off[0])).max() > 1e-4


def test_labels_split_and_combine():
  _, _, _, params = _adapted_from_base("llama", rank=2, targets=("query", "mlp_out"))
  labels = _flat(lora.param_labels(params))
  assert {n for n, label in labels.items() if label == lora.ADAPTER} == {
      n for n in labels if n.endswith(("/lora_a", "/lora_b"))}
  frozen, adapters = lora.split(params)
  assert not lora.has_adapters(frozen) and lora.has_adapters(adapters)
  assert _flat(lora.combine(frozen, adapters)).keys() == _flat(params).keys()
  assert lora.adapter_rank(adapters) == 2
  n_adapters, n_frozen = lora.count(params)
  # 2 layers x (query: A 32x2 + B 2x4x8; down: A 64x2 + B 2x32).
  assert n_adapters == 2 * ((32 * 2 + 2 * 32) + (64 * 2 + 2 * 32))
  assert n_frozen == sum(int(np.prod(v.shape)) for v in jax.tree.leaves(frozen))
  with pytest.raises(ValueError, match="no LoRA adapters"):
    lora.param_labels(frozen)


def test_adapt_keeps_the_family_and_sizes():
  base = Llama(LlamaConfig.from_preset("tiny"))
  adapted = lora.adapt(base, rank=3, alpha=6.0, targets=["value"])
  assert isinstance(adapted, Llama)
  assert adapted.config.lora_rank == 3 and adapted.config.lora_targets == ("value",)
  assert dataclasses.replace(adapted.config, lora_rank=0, lora_alpha=16.0,
                             lora_targets=decoder.LORA_TARGETS) == base.config
  assert lora.merged_network(adapted).config.lora_rank == 0
  with pytest.raises(ValueError, match="lora_rank"):
    lora.adapt(base, rank=-2)


def test_kv_cache_decoding_with_adapters_matches_the_full_forward():
  _, adapted, _, params = _adapted_from_base("gptj", rank=4)
  params = _randomise_b(params)
  tokens = _tokens(adapted.config, batch=2, length=6, seed=9)
  full = _logits(adapted, params, tokens)
  cache = adapted.apply({"params": params}, jnp.ones((2, 8), jnp.int32),
                        jnp.ones((2, 8), jnp.int32), decode=True, enable_dropout=False,
                        mutable=["cache"])[1]["cache"]
  _, state = adapted.apply({"params": params, "cache": cache}, tokens[:, :5],
                           prefill=True, prefill_lengths=jnp.array([5, 5]),
                           enable_dropout=False, mutable=["cache"])
  step, _ = adapted.apply({"params": params, "cache": state["cache"]}, tokens[:, 5:6],
                          decode=True, enable_dropout=False, mutable=["cache"])
  np.testing.assert_allclose(np.asarray(step)[:, 0], full[:, 5], atol=1e-5, rtol=1e-5)


# --- sharding ----------------------------------------------------------------------------
_SHARDING_SCRIPT = textwrap.dedent(r"""
    import json
    import jax, jax.numpy as jnp, numpy as np
    from flax import traverse_util
    from flax.linen import partitioning as flax_partitioning
    from toolformer_jax import partitioning
    from toolformer_jax.networks import lora
    from toolformer_jax.networks.gptj import GPTJ, GPTJConfig

    module = GPTJ(GPTJConfig.from_preset("tiny", lora_rank=4))
    tokens = jax.random.randint(jax.random.PRNGKey(0), (4, 16), 1, 512)
    variables = module.init(jax.random.PRNGKey(1), tokens, tokens, enable_dropout=False)
    params, axes = variables["params"], variables["params_axes"]
    flat = traverse_util.flatten_dict(params)
    keys = jax.random.split(jax.random.PRNGKey(2), len(flat))
    flat = {k: (0.5 * jax.random.normal(key, v.shape) if k[-1] == "lora_b" else v)
            for key, (k, v) in zip(keys, flat.items())}
    params = traverse_util.unflatten_dict(flat)
    reference = np.asarray(module.apply({"params": params}, tokens, enable_dropout=False))

    mesh = partitioning.make_mesh(num_partitions=2)  # data 2 x model 2
    shardings = partitioning.param_shardings(params, axes, mesh)
    sharded = jax.device_put(params, shardings)
    names = traverse_util.flatten_dict(flax_partitioning.get_axis_names(axes))
    out = {"devices": jax.device_count(), "mesh": dict(mesh.shape), "adapters": {}}
    for path, leaf in traverse_util.flatten_dict(sharded).items():
      if lora.is_adapter(path):
        out["adapters"]["/".join(path)] = {
            "shape": list(leaf.shape), "names": list(names[path]),
            "spec": [s for s in leaf.sharding.spec] + [None] * (leaf.ndim - len(leaf.sharding.spec)),
            "shards": sorted({tuple(s.data.shape) for s in leaf.addressable_shards})}
    forward = jax.jit(lambda p, t: module.apply({"params": p}, t, enable_dropout=False),
                      in_shardings=(shardings, partitioning.data_sharding(mesh)))
    logits = forward(sharded, jax.device_put(tokens, partitioning.data_sharding(mesh)))
    out["sharded_vs_single"] = float(np.abs(np.asarray(logits) - reference).max())
    # The same parameters with B = 0 (as initialised): the adapters change the logits.
    b_zero = np.asarray(module.apply({"params": variables["params"]}, tokens,
                                     enable_dropout=False))
    out["b_matters"] = float(np.abs(reference - b_zero).max())
    print("RESULT " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def lora_sharding_run():
  env = cpu_subprocess_env(devices=4)
  proc = subprocess.run([sys.executable, "-c", _SHARDING_SCRIPT], env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
  return json.loads(line[len("RESULT "):])


def test_adapters_shard_on_a_2x2_mesh_as_their_axes_say(lora_sharding_run):
  from toolformer_jax import partitioning  # pylint: disable=g-import-not-at-top
  r = lora_sharding_run
  assert r["devices"] == 4 and r["mesh"] == {"data": 2, "model": 2}
  adapters = r["adapters"]
  assert len(adapters) == 2 * 6 * 2  # layers x targets x (A, B)
  for name, info in adapters.items():
    spec = partitioning.logical_to_spec(info["names"])
    want = list(spec) + [None] * (len(info["shape"]) - len(spec))
    assert info["spec"] == want, name
    assert info["names"][-1 if name.endswith("lora_a") else 0] == "lora_rank"
    shard = [d // (2 if axis == "model" else 1) for d, axis in zip(info["shape"], want)]
    assert info["shards"] == [shard], name
  # Spot checks: B of query splits its heads, A of fc_out its mlp inputs; the rank axis
  # and embed stay whole.
  assert adapters["layers_0/attn/query/lora_b"]["shards"] == [[4, 2, 16]]
  assert adapters["layers_0/attn/query/lora_a"]["shards"] == [[64, 4]]
  assert adapters["layers_0/mlp/fc_out/lora_a"]["shards"] == [[128, 4]]
  assert adapters["layers_1/attn/out/lora_a"]["shards"] == [[2, 16, 4]]


def test_sharded_lora_forward_equals_one_device(lora_sharding_run):
  assert lora_sharding_run["sharded_vs_single"] <= 1e-5
  assert lora_sharding_run["b_matters"] > 1e-3
