"""Issue 19: abbreviations defined in a document (Schwartz & Hearst), `text2node_abbreviations`.

Real spaCy tokenization (a blank English pipeline, no sentence boundaries) and, when the
shared data is there, the NCBI Disease training abstracts against their gold mentions.
"""

import os
from collections import defaultdict

import pytest
import spacy
from conftest import shared_file
from spacy.tokens import Doc, DocBin

from spacy_text2node.datasets.pubtator import read_pubtator
from spacy_text2node.pipeline.abbreviations import (
    ABBREVIATIONS_EXT,
    AbbreviationDetector,
    find_abbreviations,
    is_short_form,
    long_form,
    match_long_form,
    resolved_text,
)


@pytest.fixture(scope="module")
def nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe("text2node_abbreviations")
    return nlp


def _definitions(nlp, text):
    return [(s.text, lf.text) for s, lf in find_abbreviations(nlp.make_doc(text))]


def _pairs(doc):
    return [(s.text, s.start, lf.text) for s, lf in doc._.text2node_abbreviations]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Germline mutations of the adenomatous polyposis coli (APC) gene.", ("APC", "adenomatous polyposis coli")),
        ("Duchenne muscular dystrophy (DMD) is X-linked.", ("DMD", "Duchenne muscular dystrophy")),
        ("levels of TNF (tumor necrosis factor) rose", ("TNF", "tumor necrosis factor")),
        ("in X-linked adrenoleukodystrophy (X-ALD) patients", ("X-ALD", "X-linked adrenoleukodystrophy")),
        ("non-insulin-dependent diabetes mellitus (NIDDM)", ("NIDDM", "non-insulin-dependent diabetes mellitus")),
        ("tumor necrosis factor-alpha (TNF-alpha) and", ("TNF-alpha", "tumor necrosis factor-alpha")),
        ("the von Hippel-Lindau (VHL) gene", ("VHL", "von Hippel-Lindau")),
        ("serum IL-2 (interleukin-2) levels", ("IL-2", "interleukin-2")),
        ("Familial adenomatous polyposis (FAP; also Gardner syndrome)", ("FAP", "Familial adenomatous polyposis")),
        ('patients with "ataxia-telangiectasia" (AT)', ("AT", "ataxia-telangiectasia")),
    ],
)
def test_definitions(nlp, text, expected):
    assert _definitions(nlp, text) == [expected]


def test_the_shortest_long_form_wins(nlp):
    # every letter of ALD is found within "adrenoleukodystrophy": "X-linked" is not needed
    assert _definitions(nlp, "X-linked adrenoleukodystrophy (ALD)") == [("ALD", "adrenoleukodystrophy")]


def test_a_long_form_whose_initials_spell_the_short_form_wins(nlp):
    # the shortest character match of AAPC is "adenomatous polyposis coli" (its second A
    # inside "adenomatous"); the four words whose initials spell A-A-P-C are the definition
    text = "a milder disease known as attenuated adenomatous polyposis coli (AAPC). Many"
    assert _definitions(nlp, text) == [("AAPC", "attenuated adenomatous polyposis coli")]
    # initials that do not spell it keep the character match
    assert _definitions(nlp, "X-linked adrenoleukodystrophy (ALD)") == [("ALD", "adrenoleukodystrophy")]
    assert _definitions(nlp, "known as multiple endocrine neoplasia (MEN) types") == [
        ("MEN", "multiple endocrine neoplasia")
    ]


def test_the_short_form_letters_must_come_in_order(nlp):
    # DM stands for "dystrophia myotonica": the letters of "myotonic dystrophy" come in the other order
    assert _definitions(nlp, "myotonic dystrophy (DM) is common") == []
    assert _definitions(nlp, "dystrophia myotonica (DM) is common") == [("DM", "dystrophia myotonica")]


@pytest.mark.parametrize(
    "text",
    [
        "the patients (n = 20) were treated",
        "as shown before (see Table 1).",
        "in 1998 (Smith et al.) and",
        "the mutation (1998) was",
        "a risk (OR) was",  # no O before the R
        "the cancer (cancer) was",  # the long form holds the short form
        "a (b) c",
        "tumour suppressor. Polyposis coli (APC)",  # the A would be in the previous sentence
    ],
)
def test_non_definitions(nlp, text):
    assert _definitions(nlp, text) == []


def test_short_form_shape():
    assert is_short_form("APC") and is_short_form("IL-2") and is_short_form("X ALD")
    assert not is_short_form("A")  # one character
    assert not is_short_form("ABCDEFGHIJK")  # eleven
    assert not is_short_form("n = 20")  # three words
    assert not is_short_form("1998")  # no letter
    assert not is_short_form("-APC")  # first character


def test_character_matching():
    text = "mutations in adenomatous polyposis coli"
    assert text[match_long_form("APC", text) :] == "adenomatous polyposis coli"
    assert match_long_form("APC", "polyposis coli") is None  # no A at the start of a word
    assert match_long_form("XYZ", "") is None
    assert match_long_form("--", "anything") is None


def test_sentence_boundaries_are_respected_when_set(nlp):
    doc = nlp.make_doc("Carriers of adenomatous polyposis coli (APC)")
    assert [(s.text, lf.text) for s, lf in find_abbreviations(doc)] == [("APC", "adenomatous polyposis coli")]
    doc = nlp.make_doc("Carriers of adenomatous polyposis coli (APC)")
    for tok in doc:
        tok.is_sent_start = tok.i in (0, 3)  # a sentence starts at "polyposis"
    assert find_abbreviations(doc) == []


def test_later_and_earlier_uses_take_the_long_form(nlp):
    doc = nlp("APC is mutated. Germline adenomatous polyposis coli (APC) mutations; APC carriers and APC-related risk.")
    assert _pairs(doc) == [
        ("APC", 0, "adenomatous polyposis coli"),
        ("APC", 9, "adenomatous polyposis coli"),
        ("APC", 13, "adenomatous polyposis coli"),
        ("APC", 16, "adenomatous polyposis coli"),
    ]
    assert long_form(doc[13:14]).text == "adenomatous polyposis coli"


def test_a_short_form_defined_twice_takes_the_nearest_definition_before(nlp):
    text = "acute myeloid leukemia (AML) ... AML ... acute megakaryoblastic leukemia (AML) ... AML"
    doc = nlp(text)
    assert [lf for _, _, lf in _pairs(doc)] == ["acute myeloid leukemia"] * 2 + ["acute megakaryoblastic leukemia"] * 2


def test_long_form_lookup(nlp):
    doc = nlp("Duchenne muscular dystrophy (DMD) is X-linked. DMD mutations are deletions.")
    dmd_later = doc[11:12]
    assert dmd_later.text == "DMD"
    assert long_form(dmd_later).text == "Duchenne muscular dystrophy"
    assert long_form(doc[4:5]).text == "Duchenne muscular dystrophy"  # the definition's own short form
    assert long_form(doc[0:3]) is None  # the long form itself
    assert long_form(doc[11:13]) is None  # "DMD mutations"
    # a span whose text is a short form, though not listed: the nearest definition before it
    doc._.text2node_abbreviations = find_abbreviations(doc)
    assert len(doc._.text2node_abbreviations) == 1
    assert long_form(dmd_later).text == "Duchenne muscular dystrophy"


def test_resolved_text_writes_short_forms_out(nlp):
    doc = nlp(
        "X-linked adrenoleukodystrophy (ALD) and Schwartz-Jampel syndrome (SJS) differ: cerebral ALD, SJS type 2."
    )
    span = lambda piece: doc.char_span(doc.text.index(piece), doc.text.index(piece) + len(piece))  # noqa: E731
    assert resolved_text(span("cerebral ALD")) == "cerebral adrenoleukodystrophy"  # the shortest long form
    assert resolved_text(span("SJS type 2")) == "Schwartz-Jampel syndrome type 2"
    assert resolved_text(doc[-6:-5]) == "adrenoleukodystrophy"  # a short form alone
    # a definition holds its long form: nothing to write out; nor in a span without short forms
    assert resolved_text(span("X-linked adrenoleukodystrophy (ALD)")) is None
    assert resolved_text(span("Schwartz-Jampel syndrome")) is None
    assert resolved_text(nlp.make_doc("cerebral ALD")[0:2]) is None  # no abbreviations set


def test_long_form_without_abbreviations(nlp):
    unset = nlp.make_doc("Duchenne muscular dystrophy (DMD) and DMD")
    assert unset._.text2node_abbreviations is None
    assert long_form(unset[-1:]) is None
    none = nlp("no abbreviations here (none at all)")
    assert none._.text2node_abbreviations == []
    assert long_form(none[0:1]) is None


@pytest.mark.parametrize(
    "text",
    ["", " ", "(", ")", "()", "(APC)", "APC (", ") APC (", "((((", "))))", "a (b (c) d", "x )( y (", "\n(\n)\n"]
    + ["foo (BAR (baz)) x", "a" * 50 + " (" + "B" * 9 + ")", "(APC) adenomatous polyposis coli (APC)"],
)
def test_odd_text_never_raises(nlp, text):
    doc = nlp(text)
    for short, lf in doc._.text2node_abbreviations:
        assert len(short) and len(lf) and (short.end <= lf.start or lf.end <= short.start)


def test_property_random_text_never_raises(nlp):
    pytest.importorskip("hypothesis", reason="needs hypothesis (the test extra)")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    alphabet = st.sampled_from(list("aAbBcCxX19 ()-,;./\n") + ["APC", "polyposis ", "adenomatous "])
    examples = int(os.environ.get("TEXT2NODE_PROPERTY_EXAMPLES", "60"))

    @settings(max_examples=examples, deadline=None)
    @given(st.lists(alphabet, max_size=40).map("".join))
    def check(text):
        doc = nlp(text)
        for short, lf in doc._.text2node_abbreviations:
            assert len(short) and len(lf) and (short.end <= lf.start or lf.end <= short.start)
            assert long_form(short) is not None

    check()


def test_the_pairs_serialize_with_the_doc(nlp):
    doc = nlp("Duchenne muscular dystrophy (DMD) and DMD")
    back = Doc(nlp.vocab).from_bytes(doc.to_bytes())
    assert (
        _pairs(back)
        == _pairs(doc)
        == [("DMD", 4, "Duchenne muscular dystrophy"), ("DMD", 7, "Duchenne muscular dystrophy")]
    )
    bin_back = list(DocBin(docs=[doc], store_user_data=True).get_docs(nlp.vocab))[0]
    assert _pairs(bin_back) == _pairs(doc)


def test_setting_pairs_of_another_doc_is_refused(nlp):
    doc, other = nlp("Duchenne muscular dystrophy (DMD)"), nlp("Duchenne muscular dystrophy (DMD)")
    with pytest.raises(ValueError, match="no \\(short Span, long Span\\) pair of this doc"):
        doc._.text2node_abbreviations = [(other[4:5], other[0:3])]
    with pytest.raises(ValueError, match="assign a list of such pairs"):
        doc._.text2node_abbreviations = ["DMD"]
    doc._.text2node_abbreviations = None
    assert doc._.text2node_abbreviations is None


def test_the_component_saves_and_loads(nlp, tmp_path):
    assert isinstance(nlp.get_pipe("text2node_abbreviations"), AbbreviationDetector)
    assert Doc.has_extension(ABBREVIATIONS_EXT)
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    assert loaded.pipe_names == ["text2node_abbreviations"]
    assert _pairs(loaded("tumor necrosis factor (TNF) and TNF")) == [
        ("TNF", 4, "tumor necrosis factor"),
        ("TNF", 7, "tumor necrosis factor"),
    ]


def test_ncbi_disease_train_abbreviations(nlp):
    """On the NCBI Disease training abstracts: many definitions, and a defined short form
    that is a gold mention almost always has a long form that is (part of) a gold mention of
    the same concept; gold short-form mentions mostly resolve to the long form's concept."""
    path = shared_file("ncbi_disease", "NCBItrainset_corpus.txt")
    definitions = gold_short = same_concept = resolved = long_gold = agree = 0
    for pdoc in read_pubtator(path):
        doc = nlp(pdoc.text)
        gold = {}
        for m in pdoc.mentions:
            span = doc.char_span(m.start, m.end, alignment_mode="expand")
            gold[(span.start, span.end)] = m
        ids_by_text = defaultdict(set)
        for m in pdoc.mentions:
            ids_by_text[m.text.lower()].add(m.ids)
        found = find_abbreviations(doc)
        definitions += len(found)
        for short, lf in found:
            if (short.start, short.end) in gold:
                gold_short += 1
                ids = gold[(short.start, short.end)].ids
                overlapping = [m for (a, b), m in gold.items() if a < lf.end and b > lf.start]
                same_concept += any(m.ids == ids for m in overlapping)
        for (a, b), m in gold.items():
            lf = long_form(doc[a:b])
            if lf is not None:
                resolved += 1
                if lf.text.lower() in ids_by_text:
                    long_gold += 1
                    agree += m.ids in ids_by_text[lf.text.lower()]
    print(
        f"NCBI train: {definitions} definitions, {gold_short} with a gold short form, {same_concept} of them with "
        f"a long form on a gold mention of the same concept; {resolved} gold mentions resolve to a long form, "
        f"{long_gold} of those long forms are gold mentions in the doc, {agree} with the same concept"
    )
    assert definitions >= 500
    assert gold_short >= 250 and same_concept >= 0.95 * gold_short
    assert resolved >= 1000 and long_gold >= 0.85 * resolved and agree >= 0.98 * long_gold
