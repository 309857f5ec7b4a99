"""The embedded search index: tantivy, one folder per region and version, a symlink for current.

Layout: ``<root>/<region>/v<N>/`` (a tantivy index each) and ``<root>/<region>/current`` → the
version queries read. A version appears only complete (built aside, then renamed) and becomes
current by an atomic ``os.replace`` of the symlink; readers compare the link per search (one
``readlink``) and open the new version, so a swap or a rollback needs no restart and searches
in flight finish on the version they started on.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import tantivy

from serving.search.model import (
    FIELD_BOOSTS,
    FUZZY_BOOST,
    OUT_OF_STOCK_FACTOR,
    IndexFacets,
    IndexHit,
    IndexQuery,
    IndexResult,
    ProductDoc,
    TermGroup,
    rank_weight,
)
from serving.search.ports import IndexVersion

log = logging.getLogger(__name__)

_VERSION = re.compile(r"^v(\d+)$")
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(ProductDoc)
# The query side of the "en_stem" tokenizer, so query words meet the indexed stems.
_STEMMER = (
    tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
    .filter(tantivy.Filter.remove_long(40))
    .filter(tantivy.Filter.lowercase())
    .filter(tantivy.Filter.stemmer("english"))
    .build()
)
_TEXT_FIELDS = {"title": "title", "brand": "brand_text", "description": "description"}
_SORT_FIELDS: dict[str, tuple[str, tantivy.Order]] = {
    "price_asc": ("price_base", tantivy.Order.Asc),
    "price_desc": ("price_base", tantivy.Order.Desc),
    "newest": ("created", tantivy.Order.Desc),
    "popularity": ("popularity", tantivy.Order.Desc),
}


def build_schema() -> tantivy.Schema:
    """The document schema (stable across versions: a change needs a reindex)."""
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw", fast=True)
    builder.add_text_field("sku", tokenizer_name="raw")
    builder.add_text_field("title", stored=True, tokenizer_name="en_stem")
    builder.add_text_field("brand_text", tokenizer_name="en_stem")
    builder.add_text_field("description", tokenizer_name="en_stem")
    # Unstemmed copy of title and brand: typo tolerance (fuzzy misses on stems) and the
    # speller's vocabulary.
    builder.add_text_field("spell", tokenizer_name="default", index_option="freq")
    builder.add_text_field("category", tokenizer_name="raw", fast=True)
    builder.add_text_field("category_ids", tokenizer_name="raw")
    builder.add_text_field("brand", tokenizer_name="raw", fast=True)
    builder.add_text_field("brand_key", tokenizer_name="raw")
    builder.add_text_field("seller", tokenizer_name="raw")
    builder.add_boolean_field("listed", indexed=True, fast=True)
    builder.add_boolean_field("in_stock", indexed=True, fast=True)
    builder.add_boolean_field("prime", indexed=True, fast=True)
    builder.add_float_field("price_base", indexed=True, fast=True)
    builder.add_integer_field("created", indexed=True, fast=True)
    builder.add_float_field("popularity", indexed=True, fast=True)
    builder.add_float_field("weight", fast=True)
    builder.add_bytes_field("doc", stored=True, indexed=False)
    return builder.build()


def _stored(document: tantivy.Document) -> ProductDoc:
    raw: bytes = document["doc"][0]
    return _DECODER.decode(raw)


def search_weight(doc: ProductDoc) -> float:
    """The ``weight`` field: tantivy multiplies scores by log2(max(w, 0) + 2), at least 1, so
    the rank weight is scaled to start at 1 and encoded through that curve."""
    return float(2 ** (rank_weight(doc) / OUT_OF_STOCK_FACTOR) - 2)


class TantivySearchIndex:
    """The SearchIndex port on tantivy (embedded, the default)."""

    def __init__(
        self,
        root: Path,
        regions: Sequence[str],
        fx_rates: Mapping[str, float],
        *,
        keep_versions: int = 5,
        writer_heap_bytes: int = 64_000_000,
    ) -> None:
        self.root = root
        self.regions = list(regions)
        self.schema = build_schema()
        self._rates = dict(fx_rates)
        self._keep = keep_versions
        self._heap = writer_heap_bytes
        self._lock = threading.RLock()
        self._indexes: dict[tuple[str, str], tantivy.Index] = {}
        self._writers: dict[str, tuple[str, tantivy.IndexWriter]] = {}
        self._dirty: set[str] = set()

    # -- versions ----------------------------------------------------------------------

    def _region_dir(self, region: str) -> Path:
        return self.root / region

    def current_version(self, region: str) -> str | None:
        """The version the region's ``current`` link points to."""
        try:
            return os.readlink(self._region_dir(region) / "current")
        except OSError:
            return None

    def _version_names(self, region: str) -> list[str]:
        folder = self._region_dir(region)
        if not folder.is_dir():
            return []
        names = [p.name for p in folder.iterdir() if _VERSION.match(p.name) and p.is_dir()]
        return sorted(names, key=lambda name: int(name[1:]))

    def versions(self, region: str) -> list[IndexVersion]:
        """Kept versions, oldest first, with their document counts."""
        current = self.current_version(region)
        out = []
        for name in self._version_names(region):
            searcher = self._index(region, name).searcher()
            out.append(IndexVersion(name, searcher.num_docs, name == current))
        return out

    def build_version(self, region: str, docs: Iterable[ProductDoc]) -> str:
        """Write ``docs`` into ``.building-vN``, then rename it to ``vN`` (complete or absent)."""
        folder = self._region_dir(region)
        folder.mkdir(parents=True, exist_ok=True)
        existing = [int(name[1:]) for name in self._version_names(region)]
        building = [
            int(p.name.rsplit("-v", 1)[1])
            for p in folder.glob(".building-v*")
            if p.name.rsplit("-v", 1)[1].isdigit()
        ]
        number = max([0, *existing, *building]) + 1
        name = f"v{number}"
        staging = folder / f".building-{name}"
        staging.mkdir()
        try:
            index = tantivy.Index(self.schema, path=str(staging))
            writer = index.writer(max(self._heap, 128_000_000))
            for doc in docs:
                writer.add_document(self._document(doc))
            writer.commit()
            writer.wait_merging_threads()
            del writer, index
            os.rename(staging, folder / name)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return name

    def activate(self, region: str, version: str) -> None:
        """Point ``current`` at ``version`` (atomic rename of a fresh symlink); prune old ones."""
        folder = self._region_dir(region)
        if not (folder / version).is_dir() or not _VERSION.match(version):
            raise ValueError(f"no index version {version!r} in region {region}")
        link = folder / f".current-{os.getpid()}-{threading.get_ident()}"
        link.unlink(missing_ok=True)
        os.symlink(version, link)
        os.replace(link, folder / "current")
        self._prune(region)

    def _prune(self, region: str) -> None:
        names = self._version_names(region)
        current = self.current_version(region)
        for name in names[: max(0, len(names) - self._keep)]:
            if name != current:
                with self._lock:
                    self._indexes.pop((region, name), None)
                shutil.rmtree(self._region_dir(region) / name, ignore_errors=True)

    def ensure_current(self, region: str) -> str:
        """The current version, creating an empty first one when the region has none."""
        with self._lock:
            current = self.current_version(region)
            if current is None:
                current = self.build_version(region, [])
                self.activate(region, current)
            return current

    # -- reading -----------------------------------------------------------------------

    def _index(self, region: str, version: str) -> tantivy.Index:
        key = (region, version)
        index = self._indexes.get(key)
        if index is None:
            with self._lock:
                index = self._indexes.get(key)
                if index is None:
                    index = tantivy.Index.open(str(self._region_dir(region) / version))
                    self._indexes[key] = index
        return index

    def _searcher(self, region: str) -> tuple[str, tantivy.Searcher] | None:
        version = self.current_version(region)
        if version is None:
            return None
        try:
            return version, self._index(region, version).searcher()
        except ValueError:  # pruned between the readlink and the open: read the link again
            version = self.current_version(region)
            if version is None:
                return None
            return version, self._index(region, version).searcher()

    def search(self, region: str, query: IndexQuery) -> IndexResult:
        """Hits of one page, total and facets, on the region's current version."""
        opened = self._searcher(region)
        if opened is None:
            return IndexResult(
                0, [], IndexFacets(price=[0] * (len(query.price_edges_base) + 1)), None
            )
        version, searcher = opened
        text = self._text_query(query.groups)
        full = self._with_filters(text, query)
        if query.sort in _SORT_FIELDS:
            field, order = _SORT_FIELDS[query.sort]
            found = searcher.search(
                full,
                query.limit,
                count=True,
                order_by_field=field,
                order=order,
                offset=query.offset,
            )
        else:
            found = searcher.search(
                full, query.limit, count=True, offset=query.offset, weight_by_field="weight"
            )
        snippets = (
            tantivy.SnippetGenerator.create(searcher, text, self.schema, "title")
            if text is not None
            else None
        )
        hits = []
        for score, address in found.hits:
            stored = searcher.doc(address)
            doc = _stored(stored)
            highlight = None
            if snippets is not None:
                snippet = snippets.snippet_from_doc(stored)
                if snippet.highlighted():
                    highlight = snippet.to_html()
            hits.append(IndexHit(doc, float(score), highlight))
        facets = self._facets(searcher, full, query)
        total = int(getattr(found, "count", None) or 0)
        return IndexResult(total, hits, facets, version)

    def _facets(
        self, searcher: tantivy.Searcher, query: tantivy.Query, spec: IndexQuery
    ) -> IndexFacets:
        edges = spec.price_edges_base
        ranges: list[dict[str, float]] = []
        for i in range(len(edges) + 1):
            bucket: dict[str, float] = {}
            if i > 0:
                bucket["from"] = edges[i - 1]
            if i < len(edges):
                bucket["to"] = edges[i]
            ranges.append(bucket)
        result: dict[str, Any] = searcher.aggregate(
            query,
            {
                "category": {"terms": {"field": "category", "size": spec.facet_size}},
                "brand": {"terms": {"field": "brand", "size": spec.facet_size}},
                "price": {"range": {"field": "price_base", "ranges": ranges}},
            },
        )
        return IndexFacets(
            category={
                b["key"]: int(b["doc_count"]) for b in result.get("category", {}).get("buckets", [])
            },
            brand={
                b["key"]: int(b["doc_count"]) for b in result.get("brand", {}).get("buckets", [])
            },
            # An index without segments answers no buckets at all.
            price=[int(b["doc_count"]) for b in result.get("price", {}).get("buckets", [])]
            or [0] * len(ranges),
        )

    def _text_query(self, groups: Sequence[TermGroup]) -> tantivy.Query | None:
        if not groups:
            return None
        required = [self._group_query(g) for g in groups if g.required]
        optional = [self._group_query(g) for g in groups if not g.required]
        clauses = [(tantivy.Occur.Must, q) for q in required]
        if required:
            clauses += [(tantivy.Occur.Should, q) for q in optional]
        else:  # at least one of the optional words must match
            clauses.append(
                (
                    tantivy.Occur.Must,
                    tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in optional]),
                )
            )
        return tantivy.Query.boolean_query(clauses)

    def _group_query(self, group: TermGroup) -> tantivy.Query:
        alternatives: list[tuple[tantivy.Occur, tantivy.Query]] = []
        for word in group.terms:
            stems = _STEMMER.analyze(word)
            if not stems:
                continue
            stem = stems[0]
            for name, field in _TEXT_FIELDS.items():
                term = tantivy.Query.term_query(self.schema, field, stem, index_option="freq")
                alternatives.append(
                    (tantivy.Occur.Should, tantivy.Query.boost_query(term, FIELD_BOOSTS[name]))
                )
            # Some words stem apart from their synonyms' stems; the raw copy catches them.
            alternatives.append(
                (tantivy.Occur.Should, tantivy.Query.term_query(self.schema, "spell", word))
            )
        if group.fuzzy is not None or group.prefix:
            word = group.fuzzy or (group.terms[0] if group.terms else "")
            if word:
                distance = 1 if len(word) <= 5 else 2
                fuzzy = tantivy.Query.fuzzy_term_query(
                    self.schema, "spell", word, distance=distance, prefix=group.prefix
                )
                alternatives.append(
                    (tantivy.Occur.Should, tantivy.Query.boost_query(fuzzy, FUZZY_BOOST))
                )
        if not alternatives:
            return tantivy.Query.empty_query()
        return tantivy.Query.boolean_query(alternatives)

    def _with_filters(self, text: tantivy.Query | None, query: IndexQuery) -> tantivy.Query:
        schema = self.schema
        f = query.filters
        filters = [tantivy.Query.term_query(schema, "listed", True)]
        if f.category is not None:
            filters.append(tantivy.Query.term_query(schema, "category_ids", f.category))
        if f.brand is not None:
            filters.append(tantivy.Query.term_query(schema, "brand_key", f.brand.lower()))
        if f.seller is not None:
            filters.append(tantivy.Query.term_query(schema, "seller", f.seller))
        if f.in_stock is not None:
            filters.append(tantivy.Query.term_query(schema, "in_stock", f.in_stock))
        if f.prime is not None:
            filters.append(tantivy.Query.term_query(schema, "prime", f.prime))
        if f.price_min_base is not None or f.price_max_base is not None:
            filters.append(
                tantivy.Query.range_query(
                    schema,
                    "price_base",
                    tantivy.FieldType.Float,
                    f.price_min_base if f.price_min_base is not None else float("-inf"),
                    f.price_max_base if f.price_max_base is not None else float("inf"),
                )
            )
        # Filters restrict, they do not score.
        clauses = [(tantivy.Occur.Must, tantivy.Query.const_score_query(q, 0.0)) for q in filters]
        if text is None:
            # No words: every listed product, scored 1 so the rank weight orders them.
            clauses.append(
                (
                    tantivy.Occur.Must,
                    tantivy.Query.const_score_query(tantivy.Query.all_query(), 1.0),
                )
            )
        else:
            clauses.append((tantivy.Occur.Must, text))
        return tantivy.Query.boolean_query(clauses)

    def doc_freq(self, region: str, word: str) -> int:
        """Documents with ``word`` in title or brand, on the current version."""
        opened = self._searcher(region)
        return 0 if opened is None else int(opened[1].doc_freq("spell", word))

    def vocabulary(self, region: str) -> dict[str, int]:
        """Title and brand words with their document frequencies."""
        opened = self._searcher(region)
        if opened is None:
            return {}
        return dict(opened[1].terms_with_prefix("spell", "", limit=None))

    def get(self, region: str, product_ids: Sequence[str]) -> dict[str, ProductDoc]:
        """Stored documents by product id (current version)."""
        opened = self._searcher(region)
        if opened is None or not product_ids:
            return {}
        searcher = opened[1]
        query = tantivy.Query.term_set_query(self.schema, "id", list(product_ids))
        found = searcher.search(query, len(product_ids), count=False)
        docs = [_stored(searcher.doc(a)) for _, a in found.hits]
        return {doc.product_id: doc for doc in docs}

    def find_by_sku(self, skus: Sequence[str]) -> dict[str, ProductDoc]:
        """SKU → its product's document, over every region."""
        wanted = set(skus)
        out: dict[str, ProductDoc] = {}
        for region in self.regions:
            opened = self._searcher(region)
            if opened is None or not wanted:
                continue
            searcher = opened[1]
            query = tantivy.Query.term_set_query(self.schema, "sku", sorted(wanted))
            found = searcher.search(query, len(wanted), count=False)
            for _, address in found.hits:
                doc = _stored(searcher.doc(address))
                for sku in wanted.intersection(doc.skus):
                    out[sku] = doc
            wanted -= set(out)
        return out

    # -- writing -----------------------------------------------------------------------

    def _writer(self, region: str) -> tantivy.IndexWriter:
        version = self.ensure_current(region)
        held = self._writers.get(region)
        if held is not None and held[0] == version:
            return held[1]
        if held is not None:  # the current version moved (reindex, rollback): follow it
            if region in self._dirty:
                held[1].commit()
            del held
            self._writers.pop(region, None)
        writer = self._index(region, version).writer(self._heap, 1)
        self._writers[region] = (version, writer)
        return writer

    def upsert(self, docs: Sequence[ProductDoc]) -> None:
        """Replace each document in its region's current version."""
        with self._lock:
            for doc in docs:
                writer = self._writer(doc.region)
                writer.delete_documents_by_term("id", doc.product_id)
                writer.add_document(self._document(doc))
                self._dirty.add(doc.region)

    def commit(self) -> None:
        """Commit what was written and reload this process's readers at once."""
        with self._lock:
            for region in sorted(self._dirty):
                held = self._writers.get(region)
                if held is None:
                    continue
                held[1].commit()
                self._index(region, held[0]).reload()
            self._dirty.clear()

    def close(self) -> None:
        """Drop writers (releasing their locks) and cached readers."""
        with self._lock:
            self.commit()
            self._writers.clear()
            self._indexes.clear()

    def _document(self, doc: ProductDoc) -> tantivy.Document:
        rate = self._rates.get(doc.currency)
        if rate is None:
            raise ValueError(f"no fx rate for {doc.currency} (SOUK_FX_RATES)")
        words = f"{doc.title} {doc.brand or ''}"
        fields: dict[str, Any] = {
            "id": doc.product_id,
            "sku": list(doc.skus),
            "title": doc.title,
            "brand_text": doc.brand or "",
            "description": doc.description,
            "spell": words,
            "category": doc.category_id,
            "category_ids": doc.category_ids,
            "brand_key": (doc.brand or "").lower(),
            "seller": doc.seller_id,
            "listed": doc.listed,
            "in_stock": doc.in_stock,
            "prime": doc.prime,
            "price_base": doc.price_minor / 100 * rate,
            "created": doc.created_us,
            "popularity": float(doc.popularity),
            "weight": search_weight(doc),
            "doc": _ENCODER.encode(doc),
        }
        if doc.brand:
            fields["brand"] = doc.brand
        return tantivy.Document(**fields)
