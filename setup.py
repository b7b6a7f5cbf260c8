"""toolformer_jax: Toolformer (Schick et al. 2023) in JAX/Flax for t5x and SeqIO users."""
import setuptools

# The verified co-installable stack (see README "Pinned stack"). Exact pins on purpose:
# seqio, t5x and tensorflow break on minor drifts of protobuf, jax and keras.
INSTALL_REQUIRES = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "tensorstore==0.1.86",
    "seqio==0.0.20",
    "tensorflow==2.21.0",
    "tensorflow-text==2.21.1",
    "tensorflow-datasets==4.9.10",
    "tensorflow-metadata==1.21.0",
    "keras==3.15.1",
    "array-record==0.8.6",
    "gin-config==0.5.0",
    "clu==0.0.12",
    "tensorboard==2.21.0",
    "importlib_resources==7.1.0",
    "sentencepiece==0.2.2",
    "tokenizers==0.23.3",
    "safetensors==0.8.0",
    "numpy==2.4.6",
    "ml-dtypes==0.6.0",
    "protobuf==6.33.6",
    "gguf==0.19.0",
    "bm25s==0.3.16",
    "py3langid==0.4.0",
    "tqdm",
    "matplotlib==3.11.2",  # annotation report plots (Agg backend, no display)
    "reasoning-gym==0.1.25",  # eval math generators (gsm_symbolic, basic_arithmetic)
    # t5x's PyPI dependencies (t5x itself, airio and jestimator are installed --no-deps by
    # the Makefile: they are not on PyPI).
    "cached_property==2.0.1",
    "chex==0.1.92",
    "fiddle==0.3.1",
    "jaxtyping==0.3.11",
    "grain==0.2.12",
]

EXTRAS_REQUIRE = {
    "test": [
        "pytest",
        "pytest-timeout",
        "torch==2.13.0",
        "transformers==5.24.0",
    ],
}

setuptools.setup(
    name="toolformer_jax",
    version="0.1.0",
    description="Toolformer in JAX/Flax for t5x and SeqIO",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["toolformer_jax", "toolformer_jax.*",
                                               "toolformer_tasks"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
