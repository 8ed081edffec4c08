import pytest
from django.http import QueryDict

from catalog.exceptions import InvalidParameter, ProductNotFound
from catalog.params import ProductListParams, product_id_param, product_ids_param, product_list_params


def test_product_list_params_defaults_when_absent():
    assert product_list_params(QueryDict("")) == ProductListParams(category="", q="", page=1, page_size=100)


def test_product_list_params_normalise_equal_queries_to_one_key():
    spelled_out = product_list_params(QueryDict("page_size=100&page=1&q=+lamp+&utm_source=mail&category=Home"))
    short = product_list_params(QueryDict("category=Home&q=lamp"))
    assert spelled_out.query_string() == short.query_string() == "category=Home&q=lamp"


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=-1",
        "page=x",
        "page=1.5",
        "page=²",
        "page=" + "9" * 5000,
        "page_size=0",
        "page_size=101",
        "q=" + "a" * 101,
        "q=" + "+" * 101,
        "category=%00",
        "page=",
        "page=+5",
        "page_size=",
        "page_size=%2010",
    ],
)
def test_product_list_params_reject_bad_values(query):
    with pytest.raises(InvalidParameter):
        product_list_params(QueryDict(query))


@pytest.mark.parametrize("raw", ["0", "01", "-1", "abc", "1e3", "9" * 20, str(2**63)])
def test_product_id_param_treats_impossible_ids_as_unknown(raw):
    with pytest.raises(ProductNotFound):
        product_id_param(raw)


def test_product_ids_param_sorts_and_deduplicates():
    assert product_ids_param(QueryDict("product_ids=3,1,3,2")) == [1, 2, 3]


def test_product_ids_param_takes_its_largest_list():
    ids = ",".join(str(n) for n in range(1, 101))

    assert product_ids_param(QueryDict(f"product_ids={ids}")) == list(range(1, 101))


@pytest.mark.parametrize(
    "query",
    [
        "",
        "product_ids=",
        "product_ids=1,x",
        "product_ids=0",
        "product_ids=-2",
        "product_ids=" + ",".join(str(n) for n in range(1, 102)),
        "product_ids=" + ",".join(["1"] * 101),
        "product_ids=1,,2",
        "product_ids=1,",
        "product_ids=,1",
        "product_ids=1,%202",
        "product_ids=%201",
        "product_ids=1;2",
        "product_ids=" + str(2**63),
    ],
)
def test_product_ids_param_rejects_bad_lists(query):
    with pytest.raises(InvalidParameter):
        product_ids_param(QueryDict(query))
