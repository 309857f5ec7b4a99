"""The shopper simulation's decision model: seeded, reproducible, Zipf-popular, a little fraud."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, replace

import pytest

from souk.seed import (
    CatalogPlan,
    SeededCatalog,
    SeededProduct,
    SeededSku,
    category_leaves,
    match_categories,
    storefront_prices,
    zipf_weights,
)
from souk.simulation import (
    FRAUD_KINDS,
    SHOPPER_COUNTRIES,
    ShopperModel,
    SimulationConfig,
    SimulationReport,
    far_regions,
    percentile,
)
from souk.simulation.model import sample_hosts
from souk.synthetic import CATEGORIES
from transactional.shared.regions import region_distance, region_of_ip


def catalog(n: int = 30) -> SeededCatalog:
    """n products ranked by popularity, priced rising with their number."""
    weights = zipf_weights(n)
    products = []
    for i in range(n):
        product_id = f"prd_{i:03d}"
        skus = tuple(
            SeededSku(
                f"SKU-{i:03d}-{colour}",
                product_id,
                storefront_prices(1000 + 700 * ((i * 7) % n), "EUR"),
                {"wh_eu_1": 10},
            )
            for colour in ("red", "blue")[: 1 + i % 2]
        )
        products.append(
            SeededProduct(product_id, "sel_1", f"Thing {i}", f"cat_{i % 4}", skus, weights[i])
        )
    return SeededCatalog(products)


def plans(config: SimulationConfig, n: int, shop: SeededCatalog | None = None) -> list[object]:
    model = ShopperModel(shop or catalog(), config)
    return [asdict(plan) for plan in model.sessions(n)]


def test_same_seed_same_profiles_arrivals_and_decisions() -> None:
    config = SimulationConfig(users=40, rate=5, duration=20, seed=11)
    first, second = ShopperModel(catalog(), config), ShopperModel(catalog(), config)
    assert first.profiles == second.profiles
    assert first.arrivals() == second.arrivals()
    assert plans(config, 300) == plans(config, 300)


def test_another_seed_decides_differently() -> None:
    base = SimulationConfig(users=40, seed=11)
    other = SimulationConfig(users=40, seed=12)
    assert plans(base, 100) != plans(other, 100)
    assert ShopperModel(catalog(), base).profiles != ShopperModel(catalog(), other).profiles


def test_a_session_plan_depends_only_on_the_seed_and_its_number() -> None:
    config = SimulationConfig(users=25, seed=3)
    model = ShopperModel(catalog(), config)
    in_order = list(model.sessions(60))
    # Asked out of order (as threads pick tickets), each plan is the same.
    for index in random.Random(1).sample(range(60), 60):
        assert model.session(index) == in_order[index]


def test_arrivals_are_a_poisson_process_at_the_rate_within_the_window() -> None:
    config = SimulationConfig(rate=20, duration=50, seed=5)
    arrivals = ShopperModel(catalog(), config).arrivals()
    assert arrivals == sorted(arrivals)
    assert all(0 < at < config.duration for at in arrivals)
    assert 900 <= len(arrivals) <= 1100  # 1000 expected, sd ~32


def test_zipf_choice_favours_the_top_ranks_by_the_power_law() -> None:
    shop = catalog(50)
    rng = random.Random(9)
    counts = Counter(shop.pick(rng).product_id for _ in range(60_000))
    ranked = [count for _, count in counts.most_common()]
    assert counts.most_common(1)[0][0] == "prd_000"
    assert ranked[0] / counts["prd_001"] == pytest.approx(2**1.1, rel=0.1)
    assert ranked[0] / counts["prd_009"] == pytest.approx(10**1.1, rel=0.2)
    # The head dominates: the top 10% of products draw about half of the views.
    assert sum(counts[f"prd_{i:03d}"] for i in range(5)) / 60_000 > 0.45


def test_views_in_sessions_follow_popularity() -> None:
    model = ShopperModel(catalog(40), SimulationConfig(users=30, seed=2, fraud_share=0))
    views = Counter(
        view.product_id
        for plan in model.sessions(3000)
        for view in plan.views
        if view.source != "search"
    )
    assert views.most_common(1)[0][0] == "prd_000"
    assert views["prd_000"] > 5 * views["prd_020"]


def test_fraud_share_of_sessions_and_only_fraudsters_commit_it() -> None:
    config = SimulationConfig(users=100, seed=4, fraud_share=0.05)
    model = ShopperModel(catalog(), config)
    fraudsters = {p.index for p in model.profiles if p.fraudster}
    assert len(fraudsters) == 5
    sessions = list(model.sessions(6000))
    fraud = [plan for plan in sessions if plan.fraud]
    assert len(fraud) / len(sessions) == pytest.approx(0.05, abs=0.01)
    assert {plan.shopper for plan in fraud} <= fraudsters
    assert not {plan.shopper for plan in sessions if not plan.fraud} & fraudsters
    kinds = Counter(kind for plan in fraud for kind in plan.fraud_kinds)
    assert set(kinds) == set(FRAUD_KINDS)


def test_fraud_sessions_burst_ship_far_and_buy_expensive() -> None:
    shop = catalog(40)
    config = SimulationConfig(users=50, seed=8, fraud_share=0.2)
    model = ShopperModel(shop, config)
    for plan in model.sessions(1000):
        if not plan.fraud:
            assert plan.orders == 1 and plan.ship_region is None
            continue
        profile = model.profiles[plan.shopper]
        assert plan.outcome == "checkout" and not plan.guest_start and plan.lines
        assert (3 <= plan.orders <= 5) == ("burst" in plan.fraud_kinds)
        if "far_shipping" in plan.fraud_kinds:
            assert plan.ship_region is not None
            assert region_distance(profile.region, plan.ship_region) >= 2
        if "high_value" in plan.fraud_kinds:
            expensive = {p.product_id for p in shop.high_value(profile.currency)}
            assert all(shop.sku(line.sku).product_id in expensive for line in plan.lines)
            assert all(line.quantity >= 2 for line in plan.lines)


def test_no_fraud_when_the_share_is_zero_and_never_only_fraudsters() -> None:
    none = ShopperModel(catalog(), SimulationConfig(users=30, fraud_share=0))
    assert not any(p.fraudster for p in none.profiles)
    assert not any(plan.fraud for plan in none.sessions(500))
    lonely = ShopperModel(catalog(), SimulationConfig(users=1, fraud_share=0.5))
    assert not lonely.profiles[0].fraudster


def test_honest_sessions_mix_guests_abandons_declines_replays_and_cancels() -> None:
    config = SimulationConfig(users=50, seed=1, fraud_share=0)
    sessions = list(ShopperModel(catalog(), config).sessions(5000))
    outcomes = Counter(plan.outcome for plan in sessions)
    assert outcomes["bounce"] / 5000 == pytest.approx(1 - config.cart_share, abs=0.03)
    carts = outcomes["checkout"] + outcomes["abandon"]
    assert outcomes["checkout"] / carts == pytest.approx(config.checkout_share, abs=0.03)
    assert sum(plan.guest_start for plan in sessions) / 5000 == pytest.approx(0.3, abs=0.03)
    cards = Counter(plan.card for plan in sessions)
    assert cards["declined"] / 5000 == pytest.approx(config.declined_share, abs=0.015)
    assert cards["insufficient_funds"] > 0
    assert sum(plan.replay for plan in sessions) / 5000 == pytest.approx(0.1, abs=0.02)
    assert sum(plan.cancel for plan in sessions) > 0
    for plan in sessions:
        assert plan.views
        cart_skus = [line.sku for line in plan.lines]
        assert len(cart_skus) == len(set(cart_skus)) <= 3
        assert set(cart_skus) <= {view.sku for view in plan.views}
        assert (plan.outcome == "bounce") == (not plan.lines)


def test_profiles_have_their_region_currency_and_a_country_we_ship_to() -> None:
    model = ShopperModel(catalog(), SimulationConfig(users=200, seed=6))
    regions = Counter(p.region for p in model.profiles)
    assert set(regions) == {"eu", "us", "in"} and regions["eu"] > regions["in"]
    for profile in model.profiles:
        assert profile.currency == {"eu": "EUR", "us": "USD", "in": "INR"}[profile.region]
        assert profile.country in SHOPPER_COUNTRIES[profile.region]


def test_far_regions_are_the_farthest_served_ones() -> None:
    assert far_regions("us", ["eu", "us", "in"]) == ["in"]
    assert sorted(far_regions("eu", ["eu", "us", "in"])) == ["in", "us"]
    assert far_regions("eu", ["eu"]) != []  # falls back to every known region


@pytest.mark.parametrize(
    "bad",
    [
        {"users": 0},
        {"rate": 0},
        {"duration": -1},
        {"fraud_share": 1.5},
        {"regions": ("eu", "mars"), "region_weights": (1, 1)},
        {"regions": ("eu",), "region_weights": (1, 1)},
    ],
)
def test_nonsense_configurations_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SimulationConfig(**bad)  # type: ignore[arg-type]


def test_storefront_prices_are_integer_minor_units_in_every_currency() -> None:
    prices = storefront_prices(2500, "EUR")
    assert set(prices) == {"EUR", "USD", "INR"}
    assert all(isinstance(v, int) and v % 100 == 99 for v in prices.values())
    assert prices["EUR"] < prices["USD"] < prices["INR"]
    assert storefront_prices(1, "INR")["EUR"] == 99  # never below 0.99


def test_synthetic_categories_map_onto_the_seeded_taxonomy_leaves() -> None:
    tree = [
        {
            "category_id": "cat_electronics",
            "name": "Electronics",
            "children": [
                {"category_id": "cat_electronics_phones", "name": "Phones", "children": []},
                {"category_id": "cat_electronics_audio", "name": "Audio", "children": []},
            ],
        },
        {
            "category_id": "cat_home",
            "name": "Home",
            "children": [{"category_id": "cat_home_cookware", "name": "Cookware", "children": []}],
        },
    ]
    leaves = category_leaves(tree)
    assert [leaf["category_id"] for leaf in leaves] == [
        "cat_electronics_phones",
        "cat_electronics_audio",
        "cat_home_cookware",
    ]
    mapping = match_categories(leaves)
    assert set(mapping) == set(CATEGORIES)
    assert mapping["cat_phones"] == "cat_electronics_phones"
    assert mapping["cat_kitchen"] == "cat_home_cookware"
    assert set(mapping.values()) <= {leaf["category_id"] for leaf in leaves}


def test_catalog_plan_and_catalog_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        CatalogPlan(products=0)
    with pytest.raises(ValueError):
        CatalogPlan(scarce_share=2)
    with pytest.raises(ValueError):
        SeededCatalog([])


def test_report_percentiles_and_verdict() -> None:
    report = SimulationReport()
    report.latencies_ms["GET /v1/x"] = [float(i) for i in range(1, 101)]
    assert report.latency("GET /v1/x") == (50.5, 100.0)
    assert percentile([], 0.99) == 0.0
    assert report.ok
    report.http_errors[409] += 3
    assert report.ok and report.five_xx == 0
    report.http_errors[503] += 1
    assert report.five_xx == 1 and not report.ok


# -- devices, addresses and cards ----------------------------------------------------------------


def test_each_shopper_has_its_own_device_and_home_address_in_its_region() -> None:
    config = SimulationConfig(users=300, seed=6)
    model = ShopperModel(catalog(), config)
    assert model.profiles == ShopperModel(catalog(), config).profiles  # seeded
    assert len({p.device for p in model.profiles}) == 300
    assert len({p.home_ip for p in model.profiles}) == 300
    for profile in model.profiles:
        assert region_of_ip(profile.home_ip, config.ip_regions) == profile.region


def test_the_network_identity_leaves_the_other_decisions_as_they_were() -> None:
    config = SimulationConfig(users=40, seed=11, fraud_share=0)
    model = ShopperModel(catalog(), config)
    other = ShopperModel(
        catalog(),
        replace(
            config,
            ip_regions={"eu": ("10.9.0.0/16",), "us": ("10.8.0.0/16",), "in": ("10.7.0.0/16",)},
        ),
    )
    strip = ("device", "home_ip")
    assert [{k: v for k, v in asdict(p).items() if k not in strip} for p in model.profiles] == [
        {k: v for k, v in asdict(p).items() if k not in strip} for p in other.profiles
    ]
    assert [replace(p, client_ip=None) for p in model.sessions(200)] == [
        replace(p, client_ip=None) for p in other.sessions(200)
    ]


def test_honest_shoppers_come_from_home_on_their_device_with_one_card_that_can_fail() -> None:
    config = SimulationConfig(users=60, seed=9, fraud_share=0.1)
    model = ShopperModel(catalog(), config)
    cards: dict[int, set[str]] = {}
    for plan in model.sessions(3000):
        if plan.fraud:
            continue
        profile = model.profiles[plan.shopper]
        assert plan.client_ip == profile.home_ip
        assert not (plan.fresh_account or plan.stolen_card or plan.test_cards)
        cards.setdefault(plan.shopper, set()).add(plan.card)
    # The good card and the shopper's one failing card: never both failing kinds.
    assert all(kinds <= {"ok", model.profiles[s].bad_card} for s, kinds in cards.items())
    bad = Counter(model.profiles[s].bad_card for s in cards)
    assert bad["declined"] > bad["insufficient_funds"] > 0  # 2:1 as the shares say


def test_fraud_kinds_change_address_card_and_account_as_labelled() -> None:
    config = SimulationConfig(users=40, seed=5, fraud_share=0.3)
    model = ShopperModel(catalog(), config)
    seen: Counter[str] = Counter()
    for plan in model.sessions(2000):
        if not plan.fraud:
            continue
        seen.update(plan.fraud_kinds)
        profile = model.profiles[plan.shopper]
        assert plan.client_ip is not None
        region = region_of_ip(plan.client_ip, config.ip_regions)
        if "foreign_ip" in plan.fraud_kinds:
            assert region is not None and region_distance(profile.region, region) >= 2
        else:
            assert plan.client_ip == profile.home_ip
        assert plan.stolen_card == ("shared_card" in plan.fraud_kinds)
        assert plan.fresh_account == bool({"shared_card", "high_value"} & set(plan.fraud_kinds))
        if "card_testing" in plan.fraud_kinds:
            assert 3 <= plan.test_cards <= 5 and plan.card == "ok"
        else:
            assert plan.test_cards == 0
    assert set(seen) == set(FRAUD_KINDS)


def test_no_foreign_address_without_another_regions_range() -> None:
    config = SimulationConfig(
        users=20,
        seed=2,
        fraud_share=0.5,
        regions=("eu",),
        region_weights=(1.0,),
        ip_regions={"eu": ("10.1.0.0/16",)},
    )
    plans = [plan for plan in ShopperModel(catalog(), config).sessions(400) if plan.fraud]
    assert plans and not any("foreign_ip" in plan.fraud_kinds for plan in plans)


def test_a_region_without_an_address_range_is_refused() -> None:
    with pytest.raises(ValueError, match="IP range"):
        SimulationConfig(ip_regions={"eu": ("10.1.0.0/16",)})
    with pytest.raises(ValueError):
        SimulationConfig(ip_regions={"eu": ("nope",), "us": ("10.2.0.0/16",), "in": ("::/0",)})


def test_sampled_hosts_are_distinct_addresses_inside_the_ranges() -> None:
    # No network or broadcast address: a /30 and a /126 hold two hosts each.
    hosts = sample_hosts(("10.1.0.0/30", "2001:db8::/126"), 4, random.Random(1))
    assert sorted(hosts) == ["10.1.0.1", "10.1.0.2", "2001:db8::1", "2001:db8::2"]
    with pytest.raises(ValueError):
        sample_hosts(("10.1.0.0/30", "2001:db8::/126"), 5, random.Random(1))
    assert sample_hosts(("10.1.0.7/32",), 1, random.Random(1)) == ["10.1.0.7"]


def test_shoppers_browse_mostly_within_their_favourite_categories() -> None:
    from souk.simulation.model import FAVOURITE_CATEGORIES

    def favourite_share(taste_share: float) -> float:
        shop = catalog(60)  # 4 categories
        model = ShopperModel(shop, SimulationConfig(users=30, seed=5, taste_share=taste_share))
        category = {p.product_id: p.category_id for p in shop.products}
        hits = total = 0
        for plan in model.sessions(600):
            if plan.fraud_kinds:
                continue
            favourites = set(model.favourite_categories(plan.shopper))
            assert len(favourites) == FAVOURITE_CATEGORIES
            browsed = [category[v.product_id] for v in plan.views if v.source != "search"]
            hits += sum(c in favourites for c in browsed)
            total += len(browsed)
        return hits / total

    with_taste, without = favourite_share(0.7), favourite_share(0.0)
    # 70 % of browsing goes to the favourites, the rest lands there by popularity (~half)
    assert with_taste > 0.8 and without < 0.65


def test_a_few_regular_shoppers_come_back_far_more_often_than_the_rest() -> None:
    model = ShopperModel(catalog(60), SimulationConfig(users=100, seed=5, fraud_share=0.0))
    visits = Counter(plan.shopper for plan in model.sessions(3000))
    busiest = sum(count for _, count in visits.most_common(10))
    # Zipf(0.5) activity: the top 10 % of accounts hold about a quarter of the sessions
    # (uniform draws would give them ~11 %), and most accounts still come back.
    assert busiest > 0.2 * 3000, visits.most_common(10)
    assert len(visits) > 90


def test_a_later_visit_continues_the_numbering_with_new_plans() -> None:
    from dataclasses import replace as with_fields

    from souk.demo import revisit_config

    config = SimulationConfig(users=20, seed=5, rate=2.0, duration=10.0)
    later = revisit_config(config)
    assert later.first_session > config.rate * config.duration
    assert later.users == config.users and later.seed == config.seed
    first = ShopperModel(catalog(), config)
    again = ShopperModel(catalog(), later)
    assert first.profiles == again.profiles  # the same shoppers come back
    assert first.session(later.first_session) == again.session(later.first_session)
    with pytest.raises(ValueError):
        with_fields(config, first_session=-1)
