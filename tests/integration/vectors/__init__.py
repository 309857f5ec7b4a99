"""Real item vectors for the embedding and vector-index tests: product titles, taste groups.

The catalog is generated (no e-commerce data set installs offline) from varied templates over
many categories, so the titles embed into a space with real structure: clusters per category,
finer ones per product kind, near-duplicates across brands. Same seed, same catalog.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

# category -> (brands, product kinds, attributes, uses)
CATALOG: dict[str, tuple[list[str], list[str], list[str], list[str]]] = {
    "audio": (
        ["Sonyx", "Boze", "JBLoud", "Sennhaus"],
        ["wireless headphones", "bluetooth earbuds", "portable speaker", "soundbar", "turntable"],
        ["noise cancelling", "waterproof", "bass boost", "hi-res", "foldable"],
        ["commuting", "the gym", "home cinema", "parties"],
    ),
    "phones": (
        ["Nokio", "Samsong", "Pixelate", "Motorolla"],
        ["smartphone", "phone case", "usb-c charger", "screen protector", "power bank"],
        ["5G", "dual sim", "fast charging", "shockproof", "128GB"],
        ["travel", "everyday use", "business", "kids"],
    ),
    "laptops": (
        ["Lenova", "Dellish", "Asos", "Acerbic"],
        ["ultrabook", "gaming laptop", "chromebook", "laptop sleeve", "docking station"],
        ["16GB RAM", "OLED", "lightweight", "RTX graphics", "long battery"],
        ["students", "gamers", "developers", "the office"],
    ),
    "kitchen": (
        ["Tefala", "Kitchenaid", "Ikeo", "Le Crucible"],
        ["frying pan", "electric kettle", "knife set", "stand mixer", "cast iron skillet"],
        ["non-stick", "stainless steel", "induction ready", "dishwasher safe", "ceramic"],
        ["baking", "family dinners", "small kitchens", "camping"],
    ),
    "furniture": (
        ["Ikeo", "Hemnes", "Oakwood", "Nordic Living"],
        ["standing desk", "office chair", "bookshelf", "sofa bed", "coffee table"],
        ["solid oak", "ergonomic", "height adjustable", "velvet", "minimalist"],
        ["home offices", "living rooms", "small flats", "bedrooms"],
    ),
    "shoes": (
        ["Nikey", "Adidos", "Pumba", "New Balanse"],
        ["running shoes", "leather boots", "sneakers", "hiking boots", "sandals"],
        ["breathable", "waterproof", "cushioned", "lightweight", "wide fit"],
        ["marathons", "trails", "winter", "summer"],
    ),
    "apparel": (
        ["Levy", "Zarah", "Uniqlow", "Patagonio"],
        ["denim jeans", "rain jacket", "cotton t-shirt", "wool sweater", "hoodie"],
        ["slim fit", "organic cotton", "recycled", "oversized", "merino"],
        ["men", "women", "teens", "outdoor work"],
    ),
    "books": (
        ["Penguinn", "Harper", "Vintage", "Orbitt"],
        ["crime thriller", "fantasy novel", "cookbook", "biography", "science fiction novel"],
        ["paperback", "hardcover", "illustrated", "bestselling", "signed edition"],
        ["book clubs", "holiday reading", "young adults", "gift giving"],
    ),
    "fitness": (
        ["Decathlan", "Garminn", "Fitbyte", "Rogue Iron"],
        ["yoga mat", "smartwatch", "dumbbells", "resistance bands", "exercise bike"],
        ["non-slip", "heart rate monitor", "adjustable", "foldable", "GPS"],
        ["home workouts", "runners", "strength training", "yoga"],
    ),
    "beauty": (
        ["Lorael", "Niveo", "Clinique", "The Ordinarie"],
        ["moisturiser", "sunscreen", "vitamin c serum", "shampoo", "lipstick"],
        ["SPF 50", "fragrance free", "vegan", "hydrating", "for sensitive skin"],
        ["dry skin", "daily use", "summer", "oily hair"],
    ),
    "garden": (
        ["Gardena", "Bosch Green", "Flymow", "Spearhead"],
        ["garden hose", "lawn mower", "hedge trimmer", "plant pots", "watering can"],
        ["expandable", "cordless", "frost proof", "terracotta", "heavy duty"],
        ["patios", "large lawns", "balconies", "vegetable beds"],
    ),
    "toys": (
        ["Lega", "Playmobill", "Hasbrow", "Brio"],
        ["building blocks", "board game", "remote control car", "plush teddy bear", "puzzle"],
        ["educational", "1000 pieces", "rechargeable", "wooden", "glow in the dark"],
        ["toddlers", "family game night", "ages 8+", "rainy days"],
    ),
    "pets": (
        ["Purina", "Kong", "Whiskas", "Trixie"],
        ["dog food", "cat litter", "dog leash", "cat scratching post", "aquarium filter"],
        ["grain free", "clumping", "reflective", "sisal", "quiet"],
        ["puppies", "senior cats", "large dogs", "fish tanks"],
    ),
    "tools": (
        ["Makita", "DeWalt", "Stanley", "Bosch Blue"],
        ["cordless drill", "screwdriver set", "tool box", "circular saw", "tape measure"],
        ["18V", "magnetic", "brushless", "professional", "compact"],
        ["DIY", "carpentry", "renovation", "tradespeople"],
    ),
    "coffee": (
        ["Delonghi", "Nespresso", "Bialetti", "Lavazza"],
        ["espresso machine", "coffee beans", "milk frother", "moka pot", "coffee grinder"],
        ["single origin", "programmable", "arabica", "burr", "dark roast"],
        ["latte lovers", "the office", "mornings", "baristas"],
    ),
    "baby": (
        ["Pampers", "Chicco", "Tommee", "Joie"],
        ["nappies", "baby stroller", "car seat", "baby bottle", "baby monitor"],
        ["size 4", "lightweight", "isofix", "anti colic", "night vision"],
        ["newborns", "travel", "night feeds", "toddlers"],
    ),
}
COLOURS = ["black", "white", "navy", "red", "olive", "grey", "beige", "pink"]
TEMPLATES = [
    "{brand} {attr} {kind}",
    "{kind} by {brand}, {attr}, {colour}",
    "{brand} {kind} {model} - {attr}",
    "{attr} {kind} for {use}",
    "{brand} {model} {kind} ({colour})",
    "{kind} - {attr} and {attr2}, ideal for {use}",
]


@dataclass(frozen=True)
class Catalog:
    """Generated products: ids, texts, their category and product kind."""

    ids: list[str]
    texts: list[str]
    categories: list[str]
    kinds: list[str]


def make_catalog(n: int, seed: int = 11) -> Catalog:
    """``n`` distinct products spread over the categories, from varied templates."""
    rng = random.Random(seed)
    names = sorted(CATALOG)
    seen: set[str] = set()
    ids, texts, categories, kinds = [], [], [], []
    while len(ids) < n:
        category = names[len(ids) % len(names)]
        brands, kind_list, attrs, uses = CATALOG[category]
        kind = rng.choice(kind_list)
        attr, attr2 = rng.sample(attrs, 2)
        title = rng.choice(TEMPLATES).format(
            brand=rng.choice(brands),
            attr=attr,
            attr2=attr2,
            kind=kind,
            use=rng.choice(uses),
            colour=rng.choice(COLOURS),
            model=f"{rng.choice('AXSMQZ')}{rng.randint(1, 99)}",
        )
        if title in seen:
            continue
        seen.add(title)
        ids.append(f"prd_{len(ids):06d}")
        texts.append(title)
        categories.append(category)
        kinds.append(kind)
    return Catalog(ids, texts, categories, kinds)


@functools.cache
def catalog_embeddings(n: int) -> tuple[Catalog, np.ndarray]:
    """The catalog of ``n`` products and its MiniLM vectors (cached: encoding is the slow part)."""
    from models.embeddings.text import TextEncoder

    catalog = make_catalog(n)
    # One ONNX thread: on the shared 2-core test machines it encoded 2x faster than two.
    return catalog, TextEncoder(threads=1).encode(catalog.texts)


def taste_interactions(
    groups: list[str], n_users: int, per_user: int, seed: int = 5
) -> sp.csr_matrix:
    """Users x items clicks: each user shops mostly in one or two groups (planted tastes)."""
    rng = np.random.default_rng(seed)
    labels = np.array(groups)
    names = sorted(set(groups))
    members = [np.flatnonzero(labels == g) for g in names]
    # Zipf-like popularity inside a group, so the factors see realistic skew.
    cdfs = [np.cumsum(1.0 / np.arange(1, len(m) + 1) ** 0.6) for m in members]
    cdfs = [c / c[-1] for c in cdfs]
    rows, cols = [], []
    for user in range(n_users):
        tastes = rng.choice(len(names), size=int(rng.integers(1, 3)), replace=False)
        picked = rng.choice(tastes, size=per_user)
        items = np.empty(per_user, dtype=np.int64)
        for g in tastes:
            mask = picked == g
            draws = np.searchsorted(cdfs[g], rng.random(int(mask.sum())))
            items[mask] = members[g][np.minimum(draws, len(members[g]) - 1)]
        noise = rng.random(per_user) < 0.1  # some clicks outside the user's tastes
        items[noise] = rng.integers(len(groups), size=int(noise.sum()))
        rows.append(np.full(per_user, user))
        cols.append(items)
    r, c = np.concatenate(rows), np.concatenate(cols)
    matrix = sp.csr_matrix(
        (np.ones(len(r), dtype=np.float32), (r, c)), shape=(n_users, len(groups))
    )
    matrix.sum_duplicates()
    return matrix


def als_factors(interactions: sp.csr_matrix, factors: int = 32, seed: int = 3) -> np.ndarray:
    """Item factors of implicit's ALS on the interactions (float32, one row per item)."""
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, not BLAS's
        model = AlternatingLeastSquares(
            factors=factors, iterations=12, regularization=0.05, random_state=seed, num_threads=2
        )
        model.fit(interactions, show_progress=False)
    return np.asarray(model.item_factors, dtype=np.float32)
