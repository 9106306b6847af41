"""Issue 19: coordinated (composite) disease mentions split into the mentions they stand for.

Cases from the NCBI Disease corpus and, when the shared data is there, its training split:
composite gold mentions (several concept ids) against ordinary ones (one id).
"""

import re

import pytest
import spacy
from conftest import shared_file

from spacy_text2node.datasets.pubtator import read_pubtator
from spacy_text2node.pipeline.composite import composite_parts, is_complete, split_composite


@pytest.mark.parametrize(
    "text,parts",
    [
        ("breast and ovarian cancer", ["breast cancer", "ovarian cancer"]),
        ("breast and/or ovarian cancer", ["breast cancer", "ovarian cancer"]),
        ("breast or ovarian cancer", ["breast cancer", "ovarian cancer"]),
        ("breast, ovarian and prostate cancers", ["breast cancers", "ovarian cancers", "prostate cancers"]),
        (
            "colorectal, endometrial, and ovarian cancers",
            ["colorectal cancers", "endometrial cancers", "ovarian cancers"],
        ),
        ("type 1 and type 2 diabetes", ["type 1 diabetes", "type 2 diabetes"]),
        ("hereditary breast and ovarian cancer", ["hereditary breast cancer", "ovarian cancer"]),
        ("Duchenne and Becker muscular dystrophy", ["Duchenne muscular dystrophy", "Becker muscular dystrophy"]),
        ("Prader-Willi and Angelman syndromes", ["Prader-Willi syndromes", "Angelman syndromes"]),
        ("HEREDITARY BREAST AND OVARIAN CANCER", ["HEREDITARY BREAST CANCER", "OVARIAN CANCER"]),
        ("B- and T-cell lymphomas", ["B-cell lymphomas", "T-cell lymphomas"]),
        # both conjuncts complete: nothing is shared
        (
            "ataxia-telangiectasia and Nijmegen breakage syndrome",
            ["ataxia-telangiectasia", "Nijmegen breakage syndrome"],
        ),
        ("cancer and diabetes", ["cancer", "diabetes"]),
        ("breast cancer and ovarian cancer", ["breast cancer", "ovarian cancer"]),
        ("colon cancer and diabetes", ["colon cancer", "diabetes"]),
        (
            "abnormalities of eyes, nervous system, and kidneys",
            ["abnormalities of eyes", "abnormalities of nervous system", "abnormalities of kidneys"],
        ),
        # head-initial: the right conjunct is one word
        ("cleft lip and palate", ["cleft lip", "cleft palate"]),
        ("hemophilia A and B", ["hemophilia A", "hemophilia B"]),
        # "X of A and B", "A and B of X"
        ("deficiency of C5 and C6", ["deficiency of C5", "deficiency of C6"]),
        ("sub-total deficiency of C6 and C7", ["sub-total deficiency of C6", "sub-total deficiency of C7"]),
        ("cancer of the breast and ovaries", ["cancer of the breast", "cancer of the ovaries"]),
        ("pits and/or sinuses of the lower lip", ["pits of the lower lip", "sinuses of the lower lip"]),
        (
            "cysts in the kidney, pancreas, and epididymis",
            ["cysts in the kidney", "cysts in pancreas", "cysts in epididymis"],
        ),
        # a slash joins only its two words
        ("Duchenne/Becker muscular dystrophy", ["Duchenne muscular dystrophy", "Becker muscular dystrophy"]),
        ("familial breast/ovarian cancer", ["familial breast cancer", "familial ovarian cancer"]),
        ("cleft lip/palate", ["cleft lip", "cleft palate"]),
        ("deficiency of C6/C7", ["deficiency of C6", "deficiency of C7"]),
    ],
)
def test_coordinations(text, parts):
    assert split_composite(text) == parts


@pytest.mark.parametrize(
    "text",
    [
        "breast cancer",
        "hemophilia",
        "CL/P",  # a one-letter side is no conjunct
        "and/or",
        "and",
        "A and",
        "and B",
        ", and B",
        "x , , and y",
        "the and a",
        "rare, sex-linked recessive, dysmyelinating disease",  # commas without a coordinator
        "aplasia or hypoplasia of the thymus and parathyroid glands",  # two coordinators
        "complement deficiencies (C2 and C7)",  # brackets
        'generalized epilepsy and febrile seizures " plus "',  # quotes
        "BRCA1-linked than for BRCA2-linked cancers",  # another preposition
        "breast cancer/ovarian cancer",  # "/" after a complete word
        "",
        "   ",
    ],
)
def test_left_unchanged(text):
    assert split_composite(text) == [text]


def test_parts_are_never_empty_and_keep_the_casing():
    for text in ["Breast And Ovarian Cancer", "breast  and \t ovarian   cancer", "A, B, and C"]:
        parts = split_composite(text)
        assert all(p.strip() and p == p.strip() for p in parts)
        assert all(w in text.split() for p in parts for w in p.split())


def test_complete_words():
    assert is_complete("cancers") and is_complete("ataxia-telangiectasia") and is_complete("Carcinomas")
    assert not is_complete("breast") and not is_complete("ovarian") and not is_complete("Becker")


def test_composite_parts_of_a_span():
    doc = spacy.blank("en")("Carriers of breast and ovarian cancer genes.")
    assert composite_parts(doc[2:6]) == ["breast cancer", "ovarian cancer"]
    assert composite_parts(doc[0:1]) == ["Carriers"]


def test_ncbi_disease_train_composites():
    """Composite gold mentions (several ids) split into as many parts as they have ids for a
    clear majority: those that are no coordination at all ("hemophilia", "CES") cannot;
    ordinary mentions (one id) are nearly always left whole: those split are mostly
    "breast and ovarian cancer" annotated as the one concept of the syndrome."""
    path = shared_file("ncbi_disease", "NCBItrainset_corpus.txt")
    mentions = [m for pdoc in read_pubtator(path) for m in pdoc.mentions]
    composite = [m for m in mentions if len(m.ids) > 1]
    single = [m for m in mentions if len(m.ids) == 1]
    same = [m for m in composite if len(split_composite(m.text)) == len(m.ids)]
    coordinated = [m for m in composite if re.search(r"\b(and|or)\b|/", m.text, flags=re.IGNORECASE)]
    coordinated_same = [m for m in coordinated if m in same]
    whole = [m for m in single if split_composite(m.text) == [m.text]]
    print(
        f"NCBI train: {len(same)}/{len(composite)} composite mentions split into as many parts as ids "
        f"({len(same) / len(composite):.3f}), {len(coordinated_same)}/{len(coordinated)} of those with a coordinator; "
        f"{len(whole)}/{len(single)} single-id mentions left whole ({len(whole) / len(single):.4f})"
    )
    assert len(composite) >= 100 and len(single) >= 5000
    assert len(same) >= 0.6 * len(composite)
    assert len(coordinated_same) >= 0.85 * len(coordinated)
    assert len(whole) >= 0.98 * len(single)
