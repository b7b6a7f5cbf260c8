"""MT against the real apertium (installed by `make test`): every pair, language id, batching."""
import pytest

from toolformer_jax.tools import base
from toolformer_jax.tools import mt


# (input, language, words the English output must contain)
SENTENCES = [
    ('"¿Dónde está la biblioteca?"', "es", ["where", "library"]),
    ("¿Cuántos años tienes?", "es", ["how", "years"]),
    # py3langid alone says Extremaduran ('ext') here; the alias counts it as Spanish.
    ("Teherán es la capital de la República Islámica de Irán.", "es", ["capital", "republic"]),
    ("El gat menja peix.", "ca", ["cat", "eats", "fish"]),
    ("On és la biblioteca?", "ca", ["where", "library"]),
    ("O gato come peixe.", "gl", ["cat", "eats", "fish"]),
    ("Katua arraina jaten ari da.", "eu", ["cat", "fish"]),
    ("Le chat mange du poisson.", "fr", ["cat", "eats", "fish"]),  # fr-es then spa-eng
    ("Où est la bibliothèque ?", "fr", ["where", "library"]),
]


@pytest.mark.parametrize("text, lang, words", SENTENCES)
def test_translates_every_pair(mt_tool, text, lang, words):
  assert mt_tool.identify(mt.clean_text(text.strip('"')))[0] == lang
  out = mt_tool(text).lower()
  for word in words:
    assert word in out, (text, out)
  assert "*" not in out and "#" not in out  # unknown-word marks are removed


@pytest.mark.parametrize("text", ["Where is the library?", '"The cat eats fish."',
                                  "12345", "3.14 + 2", "?!"])
def test_english_and_language_neutral_text_come_back_unchanged(mt_tool, text):
  assert mt_tool(text) == text.strip('"')


def test_single_words_use_the_dictionaries(mt_tool):
  # Language id alone is unsure on one word; apertium's dictionaries decide.
  assert mt_tool('"tortuga"').lower() == "turtle"  # the paper's example
  assert mt_tool("gracias").lower() == "thank you"


def test_unsupported_language_is_an_error(mt_tool):
  with pytest.raises(base.ToolError, match="'de' is not supported"):
    mt_tool("Der Hund bellt laut, weil er Hunger hat.")


@pytest.mark.parametrize("text, error", [
    ('""', base.ToolError), ("\x00\x00 \n", base.ToolError), ("x" * 1001, base.ToolRefused)])
def test_bad_input(mt_tool, text, error):
  with pytest.raises(error):
    mt_tool(text)


def test_control_characters_are_cleaned(mt_tool):
  assert mt.clean_text("a\x00b\nc\td") == "a b c d"
  assert "library" in mt_tool("¿Dónde\x00 está\n la biblioteca?").lower()


def test_batch_matches_single_calls(mt_tool):
  texts = [s for s, _, _ in SENTENCES] + ["tortuga", "Where is the library?", "",
                                          "Der Hund bellt laut, weil er Hunger hat."]
  batch = mt_tool.call_batch([(t, None) for t in texts])
  for text, got in zip(texts, batch):
    try:
      expected = mt_tool(text)
    except base.ToolError as e:
      assert isinstance(got, base.ToolError) and str(got) == str(e)
    else:
      assert got == expected


def test_missing_apertium_names_the_install_command():
  with pytest.raises(base.ToolUnavailable) as info:
    mt.MT(apertium_binary="apertium-not-installed-here")
  assert "apt-get install" in str(info.value) and "apertium-eng-spa" in str(info.value)


def test_missing_mode_names_the_install_command():
  with pytest.raises(base.ToolUnavailable, match="apt-get install"):
    mt.MT(pipelines={"es": ("spa-xyz",)})


def test_backend_is_declared_for_the_sandbox(mt_tool):
  assert mt_tool.allowed_executables == (mt_tool.binary,)
  assert mt_tool.binary.startswith("/")
