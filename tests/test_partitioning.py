"""Sharding on fake CPU devices: parameters really split along `model`, same numbers.

Runs in a subprocess because the fake device count must be set before jax starts.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from cpu_env import cpu_subprocess_env

from toolformer_jax import partitioning

_SCRIPT = textwrap.dedent(r"""
    import json, os, sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from toolformer_jax import partitioning
    from toolformer_jax.checkpoints import orbax_io
    from toolformer_jax.networks.gptj import GPTJ, GPTJConfig

    out = {"devices": jax.device_count()}
    config = GPTJConfig.from_preset("tiny")
    module = GPTJ(config)
    tokens = jax.random.randint(jax.random.PRNGKey(0), (4, 24), 1, config.vocab_size)
    variables = module.init(jax.random.PRNGKey(1), jnp.ones_like(tokens), jnp.ones_like(tokens),
                            enable_dropout=False)
    params, axes = variables["params"], variables["params_axes"]
    reference = np.asarray(module.apply({"params": params}, tokens, enable_dropout=False))

    mesh = partitioning.make_mesh(num_partitions=2)  # data=2 x model=2
    sharded = partitioning.shard_params(params, axes, mesh)
    shard_shapes = lambda x: sorted({tuple(s.data.shape) for s in x.addressable_shards})
    out["query_kernel"] = [list(params["layers_0"]["attn"]["query"]["kernel"].shape),
                           shard_shapes(sharded["layers_0"]["attn"]["query"]["kernel"])]
    out["fc_in_kernel"] = [list(params["layers_0"]["mlp"]["fc_in"]["kernel"].shape),
                           shard_shapes(sharded["layers_0"]["mlp"]["fc_in"]["kernel"])]
    out["embedding"] = [list(params["token_embedder"]["embedding"].shape),
                        shard_shapes(sharded["token_embedder"]["embedding"])]
    out["ln_scale"] = [list(params["layers_0"]["ln"]["scale"].shape),
                       shard_shapes(sharded["layers_0"]["ln"]["scale"])]

    def forward(p, t):
      return module.apply({"params": p}, t, enable_dropout=False)

    shardings = partitioning.param_shardings(params, axes, mesh)
    step = jax.jit(forward, in_shardings=(shardings, partitioning.data_sharding(mesh)),
                   out_shardings=NamedSharding(mesh, P("data", None, "model")))
    logits = step(sharded, jax.device_put(tokens, partitioning.data_sharding(mesh)))
    out["logits_shard_shapes"] = shard_shapes(logits)
    out["sharded_vs_single"] = float(np.abs(np.asarray(logits) - reference).max())

    # The same through t5x's own partitioner and the project's rules.
    partitioner = partitioning.make_partitioner(num_partitions=2)
    out["t5x_mesh"] = dict(partitioner.mesh.shape)
    t5x_step = partitioner.partition(
        forward,
        in_axis_resources=(partitioning.param_specs(axes), P("data")),
        out_axis_resources=P("data", None, "model"))
    out["t5x_vs_single"] = float(np.abs(np.asarray(t5x_step(sharded, tokens)) - reference).max())

    # Orbax: save from the 2x2 mesh, restore onto 1x4 and onto the host.
    path = os.path.join(sys.argv[1], "params")
    orbax_io.save_params(path, sharded)
    mesh4 = partitioning.make_mesh(num_partitions=4)
    restored4 = orbax_io.restore_params(path, partitioning.param_shardings(params, axes, mesh4))
    host = orbax_io.restore_params(path)
    same = jax.tree.map(lambda a, b, c: bool(np.array_equal(np.asarray(a), np.asarray(b))
                                             and np.array_equal(np.asarray(a), c)),
                        params, restored4, host)
    out["orbax_identical"] = all(jax.tree.leaves(same))
    out["restored4_query"] = shard_shapes(restored4["layers_0"]["attn"]["query"]["kernel"])

    # A dimension the mesh cannot split fails up front, naming the parameter.
    from flax.linen import partitioning as flax_partitioning
    bad_params = {"attn": {"query": {"kernel": np.zeros((3, 16), np.float32)}}}
    bad_axes = {"attn": {"query": {"kernel_axes": flax_partitioning.AxisMetadata(
        names=("heads", "kv"))}}}
    try:
      partitioning.shard_params(bad_params, bad_axes, mesh)
      out["indivisible_error"] = ""
    except ValueError as e:
      out["indivisible_error"] = str(e)
    print("RESULT " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def sharding_run(tmp_path_factory):
  env = cpu_subprocess_env(devices=4)
  proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path_factory.mktemp("orbax"))],
                        env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
  return json.loads(line[len("RESULT "):])


def test_params_are_split_along_model(sharding_run):
  r = sharding_run
  assert r["devices"] == 4
  # [embed, heads, head_dim]: heads split over model=2.
  full, shards = r["query_kernel"]
  assert shards == [[full[0], full[1] // 2, full[2]]]
  full, shards = r["fc_in_kernel"]  # [embed, mlp]
  assert shards == [[full[0], full[1] // 2]]
  full, shards = r["embedding"]  # [vocab, embed]
  assert shards == [[full[0] // 2, full[1]]]
  full, shards = r["ln_scale"]  # replicated
  assert shards == [full]


def test_sharded_forward_equals_single_device(sharding_run):
  assert sharding_run["logits_shard_shapes"] == [[2, 24, 256]]
  assert sharding_run["sharded_vs_single"] <= 1e-5
  assert sharding_run["t5x_mesh"] == {"data": 2, "model": 2}
  assert sharding_run["t5x_vs_single"] <= 1e-5


def test_orbax_restores_identical_arrays_onto_another_mesh(sharding_run):
  assert sharding_run["orbax_identical"]
  assert sharding_run["restored4_query"] == [[64, 1, 16]]


@pytest.mark.parametrize("names,expected", [
    (("embed", "heads", "kv"), (None, "model", None)),
    (("vocab", "embed"), ("model", None)),
    (("embed", "mlp"), (None, "model")),
    (("embed", "kv_heads", "kv"), (None, "model", None)),
    (("layers", "embed"), (None, None)),
    (("batch", "length"), ("data", None)),
])
def test_logical_rules(names, expected):
  spec = partitioning.logical_to_spec(names)
  assert tuple(spec) + (None,) * (len(expected) - len(spec)) == expected


def test_rules_agree_with_t5x_standard_rules():
  from t5x import partitioning as t5x_partitioning
  standard = dict(t5x_partitioning.standard_logical_axis_rules())
  ours = dict(partitioning.LOGICAL_AXIS_RULES)
  assert len(partitioning.LOGICAL_AXIS_RULES) <= 11  # t5x's 9 + kv_heads + lora_rank
  for name, mesh_axis in ours.items():
    if name in standard:
      assert standard[name] == mesh_axis, name


def test_indivisible_dimension_fails_with_the_parameter_name(sharding_run):
  message = sharding_run["indivisible_error"]
  assert "['attn']['query']['kernel']" in message and "num_partitions" in message
