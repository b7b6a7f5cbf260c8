"""The probe generator is deterministic, sized, and its answers are in the corpus."""
from toolformer_jax import corpora
from toolformer_jax.tools import probes


def test_probes_are_deterministic_and_sized(articles, probe_set):
  again = probes.generate_probes(articles, num_title=100, num_fact=150, seed=0)
  assert again == probe_set
  assert sum(p.kind == "title" for p in probe_set) == 100
  facts = [p for p in probe_set if p.kind == "fact"]
  assert len(facts) == 150
  assert {p.template for p in facts} == {"born", "died", "creator", "capital"}
  assert probes.generate_probes(articles, seed=1) != probe_set


def test_fact_answers_are_stated_in_their_article(articles, probe_set):
  by_title = {a.title: a for a in articles}
  for p in probe_set:
    if p.kind != "fact":
      continue
    article = by_title[p.title]
    assert p.answer in article.description + " " + article.text


def test_fact_templates():
  article = corpora.wikipedia_article("Utopia (book)", "Utopia is a work of fiction.",
                                      "1516 book by Thomas More")
  assert probes.fact_probes(article) == [
      probes.Probe("fact", "Who wrote the book Utopia?", "Thomas More", "Utopia (book)",
                   "creator")]
  article = corpora.wikipedia_article("Andorra", "Its capital is Andorra la Vella.",
                                      "Microstate")
  assert probes.fact_probes(article)[0].answer == "Andorra la Vella"
  person = corpora.wikipedia_article("Baruch Spinoza", "He was a philosopher.",
                                     "Philosopher (1632–1677)")
  assert [p.answer for p in probes.fact_probes(person)] == ["1632", "1677"]


def test_normalize_answer():
  assert probes.normalize_answer("The  J. D. Salinger!") == "j d salinger"
