"""The SearchIndex port on Elasticsearch (``SOUK_SEARCH_URL``, the official client).

Versions are indices ``<prefix>-<region>-v<N>``; the alias ``<prefix>-<region>`` names the
current one and moves atomically (one ``_aliases`` call removes and adds), so readers follow a
swap or a rollback at once. Same semantics as the tantivy adapter: the fields, boosts, filters,
facets and sorts of ``IndexQuery``; popularity and availability multiply the text score
(``function_score`` over the ``weight`` field).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import msgspec
from elasticsearch import Elasticsearch, NotFoundError, helpers

from serving.search.model import (
    FIELD_BOOSTS,
    FUZZY_BOOST,
    IndexFacets,
    IndexHit,
    IndexQuery,
    IndexResult,
    ProductDoc,
    TermGroup,
    highlight_title,
    rank_weight,
    tokens,
)
from serving.search.ports import IndexVersion

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(ProductDoc)
_MAX_VOCABULARY = 65_536
_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "id": {"type": "keyword"},
        "sku": {"type": "keyword"},
        "title": {"type": "text", "analyzer": "english"},
        "brand_text": {"type": "text", "analyzer": "english"},
        "description": {"type": "text", "analyzer": "english"},
        "spell": {"type": "text", "analyzer": "standard"},
        "words": {"type": "keyword"},
        "category": {"type": "keyword"},
        "category_ids": {"type": "keyword"},
        "brand": {"type": "keyword"},
        "brand_key": {"type": "keyword"},
        "seller": {"type": "keyword"},
        "listed": {"type": "boolean"},
        "in_stock": {"type": "boolean"},
        "prime": {"type": "boolean"},
        "price_base": {"type": "double"},
        "created": {"type": "long"},
        "popularity": {"type": "double"},
        "weight": {"type": "double"},
        "doc": {"type": "keyword", "index": False, "doc_values": False},
    },
}
_TEXT_FIELDS = {"title": "title", "brand": "brand_text", "description": "description"}
_SORTS: dict[str, list[dict[str, str]]] = {
    "price_asc": [{"price_base": "asc"}, {"id": "asc"}],
    "price_desc": [{"price_base": "desc"}, {"id": "asc"}],
    "newest": [{"created": "desc"}, {"id": "asc"}],
    "popularity": [{"popularity": "desc"}, {"id": "asc"}],
}


class ElasticSearchIndex:
    """Versioned indices behind one alias per region."""

    def __init__(
        self,
        url: str,
        regions: Sequence[str],
        fx_rates: Mapping[str, float],
        *,
        prefix: str = "souk-search",
        keep_versions: int = 5,
        client: Elasticsearch | None = None,
    ) -> None:
        self.client = client or Elasticsearch(url, request_timeout=30)
        self.regions = list(regions)
        self.prefix = prefix
        self._rates = dict(fx_rates)
        self._keep = keep_versions
        self._pending: list[dict[str, Any]] = []
        self._touched: set[str] = set()

    def alias(self, region: str) -> str:
        """The alias queries of ``region`` go to."""
        return f"{self.prefix}-{region}"

    def _index_name(self, region: str, version: str) -> str:
        return f"{self.prefix}-{region}-{version}"

    # -- versions ----------------------------------------------------------------------

    def current_version(self, region: str) -> str | None:
        """The version the region's alias points at."""
        try:
            found = self.client.indices.get_alias(name=self.alias(region))
        except NotFoundError:
            return None
        names = sorted(found.body)
        return names[-1].rsplit("-", 1)[1] if names else None

    def _version_names(self, region: str) -> list[str]:
        pattern = re.compile(rf"^{re.escape(self.prefix)}-{re.escape(region)}-(v\d+)$")
        try:
            found = self.client.indices.get(index=f"{self.prefix}-{region}-v*")
        except NotFoundError:
            return []
        names = [m.group(1) for name in found.body if (m := pattern.match(name))]
        return sorted(names, key=lambda n: int(n[1:]))

    def versions(self, region: str) -> list[IndexVersion]:
        """Kept versions, oldest first, with their document counts."""
        current = self.current_version(region)
        return [
            IndexVersion(
                name,
                int(self.client.count(index=self._index_name(region, name))["count"]),
                name == current,
            )
            for name in self._version_names(region)
        ]

    def build_version(self, region: str, docs: Iterable[ProductDoc]) -> str:
        """Create the next version's index and load ``docs`` into it (not yet current)."""
        existing = [int(n[1:]) for n in self._version_names(region)]
        name = f"v{max([0, *existing]) + 1}"
        index = self._index_name(region, name)
        self.client.indices.create(index=index, mappings=_MAPPINGS)
        helpers.bulk(
            self.client,
            ({"_index": index, "_id": d.product_id, **self._source(d)} for d in docs),
            chunk_size=1000,
            refresh=True,
        )
        return name

    def activate(self, region: str, version: str) -> None:
        """Move the alias to ``version`` in one atomic ``_aliases`` call; prune old versions."""
        if version not in self._version_names(region):
            raise ValueError(f"no index version {version!r} in region {region}")
        alias = self.alias(region)
        actions: list[dict[str, Any]] = []
        current = self.current_version(region)
        if current is not None:
            actions.append({"remove": {"index": self._index_name(region, current), "alias": alias}})
        actions.append({"add": {"index": self._index_name(region, version), "alias": alias}})
        self.client.indices.update_aliases(actions=actions)
        names = self._version_names(region)
        for old in names[: max(0, len(names) - self._keep)]:
            if old != version:
                self.client.indices.delete(index=self._index_name(region, old))

    def ensure_current(self, region: str) -> str:
        """The current version, creating an empty first one when the region has none."""
        current = self.current_version(region)
        if current is None:
            current = self.build_version(region, [])
            self.activate(region, current)
        return current

    # -- reading -----------------------------------------------------------------------

    def search(self, region: str, query: IndexQuery) -> IndexResult:
        """Hits of one page, total and facets, through the region's alias."""
        version = self.current_version(region)
        if version is None:
            empty = IndexFacets(price=[0] * (len(query.price_edges_base) + 1))
            return IndexResult(0, [], empty, None)
        text = self._text_query(query.groups)
        scored = {
            "function_score": {
                "query": self._with_filters(text, query),
                "field_value_factor": {"field": "weight", "missing": 1},
                "boost_mode": "multiply",
            }
        }
        edges = query.price_edges_base
        ranges = [
            {
                **({"from": edges[i - 1]} if i > 0 else {}),
                **({"to": edges[i]} if i < len(edges) else {}),
            }
            for i in range(len(edges) + 1)
        ]
        found = self.client.search(
            index=self.alias(region),
            query=scored,
            from_=query.offset,
            size=query.limit,
            track_total_hits=True,
            sort=_SORTS.get(query.sort, [{"_score": "desc"}, {"id": "asc"}]),
            aggs={
                "category": {"terms": {"field": "category", "size": query.facet_size}},
                "brand": {"terms": {"field": "brand", "size": query.facet_size}},
                "price": {"range": {"field": "price_base", "ranges": ranges}},
            },
        )
        words = [w for g in query.groups for w in (*g.terms, g.fuzzy or "") if w]
        hits = []
        for hit in found["hits"]["hits"]:
            doc = _DECODER.decode(hit["_source"]["doc"])
            hits.append(
                IndexHit(doc, float(hit.get("_score") or 0.0), highlight_title(doc.title, words))
            )
        aggs = found["aggregations"]
        facets = IndexFacets(
            category={b["key"]: int(b["doc_count"]) for b in aggs["category"]["buckets"]},
            brand={b["key"]: int(b["doc_count"]) for b in aggs["brand"]["buckets"]},
            price=[int(b["doc_count"]) for b in aggs["price"]["buckets"]],
        )
        return IndexResult(int(found["hits"]["total"]["value"]), hits, facets, version)

    def _text_query(self, groups: Sequence[TermGroup]) -> dict[str, Any] | None:
        if not groups:
            return None
        required = [self._group_query(g) for g in groups if g.required]
        optional = [self._group_query(g) for g in groups if not g.required]
        if required:
            return {"bool": {"must": required, "should": optional}}
        return {"bool": {"should": optional, "minimum_should_match": 1}}

    def _group_query(self, group: TermGroup) -> dict[str, Any]:
        should: list[dict[str, Any]] = []
        for word in group.terms:
            for name, field in _TEXT_FIELDS.items():
                should.append({"match": {field: {"query": word, "boost": FIELD_BOOSTS[name]}}})
            should.append({"term": {"spell": {"value": word}}})
        near = group.fuzzy or (group.terms[0] if group.prefix and group.terms else None)
        if near:
            distance = 1 if len(near) <= 5 else 2
            should.append(
                {"fuzzy": {"spell": {"value": near, "fuzziness": distance, "boost": FUZZY_BOOST}}}
            )
            if group.prefix:
                should.append({"prefix": {"spell": {"value": near, "boost": FUZZY_BOOST}}})
        if not should:
            return {"match_none": {}}
        return {"bool": {"should": should, "minimum_should_match": 1}}

    def _with_filters(self, text: dict[str, Any] | None, query: IndexQuery) -> dict[str, Any]:
        f = query.filters
        filters: list[dict[str, Any]] = [{"term": {"listed": True}}]
        if f.category is not None:
            filters.append({"term": {"category_ids": f.category}})
        if f.brand is not None:
            filters.append({"term": {"brand_key": f.brand.lower()}})
        if f.seller is not None:
            filters.append({"term": {"seller": f.seller}})
        if f.in_stock is not None:
            filters.append({"term": {"in_stock": f.in_stock}})
        if f.prime is not None:
            filters.append({"term": {"prime": f.prime}})
        if f.price_min_base is not None or f.price_max_base is not None:
            bounds: dict[str, float] = {}
            if f.price_min_base is not None:
                bounds["gte"] = f.price_min_base
            if f.price_max_base is not None:
                bounds["lte"] = f.price_max_base
            filters.append({"range": {"price_base": bounds}})
        return {"bool": {"must": [text or {"match_all": {}}], "filter": filters}}

    def doc_freq(self, region: str, word: str) -> int:
        """Documents with ``word`` in title or brand."""
        if self.current_version(region) is None:
            return 0
        return int(
            self.client.count(index=self.alias(region), query={"term": {"words": word}})["count"]
        )

    def vocabulary(self, region: str) -> dict[str, int]:
        """Title and brand words with their document frequencies (a terms aggregation)."""
        if self.current_version(region) is None:
            return {}
        found = self.client.search(
            index=self.alias(region),
            size=0,
            aggs={"words": {"terms": {"field": "words", "size": _MAX_VOCABULARY}}},
        )
        return {b["key"]: int(b["doc_count"]) for b in found["aggregations"]["words"]["buckets"]}

    def _find(self, indices: str, field: str, values: Sequence[str]) -> Iterator[ProductDoc]:
        found = self.client.search(
            index=indices,
            query={"terms": {field: list(values)}},
            size=max(len(values), 1) * 4,
            ignore_unavailable=True,
        )
        for hit in found["hits"]["hits"]:
            yield _DECODER.decode(hit["_source"]["doc"])

    def get(self, region: str, product_ids: Sequence[str]) -> dict[str, ProductDoc]:
        """Stored documents by product id."""
        if not product_ids or self.current_version(region) is None:
            return {}
        return {d.product_id: d for d in self._find(self.alias(region), "id", product_ids)}

    def find_by_sku(self, skus: Sequence[str]) -> dict[str, ProductDoc]:
        """SKU → its product's document, over every region."""
        present = [self.alias(r) for r in self.regions if self.current_version(r) is not None]
        if not skus or not present:
            return {}
        wanted = set(skus)
        return {
            sku: doc
            for doc in self._find(",".join(present), "sku", sorted(wanted))
            for sku in wanted.intersection(doc.skus)
        }

    # -- writing -----------------------------------------------------------------------

    def upsert(self, docs: Sequence[ProductDoc]) -> None:
        """Queue documents for their region's current index (written by ``commit``)."""
        for doc in docs:
            version = self.ensure_current(doc.region)
            self._pending.append(
                {
                    "_index": self._index_name(doc.region, version),
                    "_id": doc.product_id,
                    **self._source(doc),
                }
            )
            self._touched.add(doc.region)

    def commit(self) -> None:
        """Bulk-write the queued documents and refresh, so searches see them."""
        if self._pending:
            helpers.bulk(self.client, self._pending, refresh=True)
        self._pending = []
        self._touched.clear()

    def close(self) -> None:
        """Write what is queued and close the client."""
        self.commit()
        self.client.close()

    def _source(self, doc: ProductDoc) -> dict[str, Any]:
        rate = self._rates.get(doc.currency)
        if rate is None:
            raise ValueError(f"no fx rate for {doc.currency} (SOUK_FX_RATES)")
        words = f"{doc.title} {doc.brand or ''}"
        return {
            "id": doc.product_id,
            "sku": list(doc.skus),
            "title": doc.title,
            "brand_text": doc.brand or "",
            "description": doc.description,
            "spell": words,
            "words": sorted(set(tokens(words))),
            "category": doc.category_id,
            "category_ids": doc.category_ids,
            "brand": doc.brand,
            "brand_key": (doc.brand or "").lower(),
            "seller": doc.seller_id,
            "listed": doc.listed,
            "in_stock": doc.in_stock,
            "prime": doc.prime,
            "price_base": doc.price_minor / 100 * rate,
            "created": doc.created_us,
            "popularity": float(doc.popularity),
            "weight": rank_weight(doc),
            "doc": _ENCODER.encode(doc).decode(),
        }
