"""Coupon rule `tiered-spend` in Python, built with componentize-py."""
import json
from decimal import Decimal, InvalidOperation

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.rule_types import Adjustment, Cart, RuleManifest


def money(minor: int, currency: str) -> str:
    return f"{Decimal(minor) / 100:.2f} {currency}"


def parse_percent(value) -> Decimal | None:
    # JSON fractions are floats: a fractional percent must be a string ("7.5").
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    try:
        percent = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        return None
    return percent if percent.is_finite() and 0 < percent <= 100 else None


def parse_tiers(config: str) -> list[tuple[int, Decimal]]:
    try:
        doc = json.loads(config)
    except ValueError as e:
        raise Err(f"invalid config: {e}")
    if not isinstance(doc, dict) or set(doc) != {"tiers"} or not isinstance(doc["tiers"], list):
        raise Err('invalid config: expected {"tiers": [{"min_subtotal": …, "percent": …}]}')
    if not doc["tiers"]:
        raise Err("invalid config: `tiers` is empty")
    tiers = []
    for i, tier in enumerate(doc["tiers"]):
        if not isinstance(tier, dict) or set(tier) != {"min_subtotal", "percent"}:
            raise Err(f"invalid config: tiers[{i}] needs exactly min_subtotal and percent")
        minimum, percent = tier["min_subtotal"], parse_percent(tier["percent"])
        if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 0:
            raise Err(f"invalid config: tiers[{i}].min_subtotal must be an integer, 0 or more")
        if percent is None:
            raise Err(f"invalid config: tiers[{i}].percent must be an integer or a decimal"
                      ' string such as "7.5", more than 0 and at most 100')
        tiers.append((minimum, percent))
    tiers.sort(key=lambda t: t[0])
    if len({t[0] for t in tiers}) != len(tiers):
        raise Err("invalid config: two tiers have the same min_subtotal")
    return tiers


def price(subtotal: int, currency: str, config: str) -> Adjustment:
    tiers = parse_tiers(config)
    reached = [t for t in tiers if t[0] <= subtotal]
    if not reached:
        raise Err(f"subtotal {money(subtotal, currency)} is below the lowest tier"
                  f" {money(tiers[0][0], currency)}")
    minimum, percent = reached[-1]
    amount = int(Decimal(subtotal) * percent // 100)  # exact; // rounds down for amounts ≥ 0
    shown = percent.normalize()
    if amount == 0:
        raise Err(f"{shown:f}% of {money(subtotal, currency)} rounds down to nothing")
    return Adjustment(amount, [], f"{shown:f}% off orders of {money(minimum, currency)} or more")


class Rule(exports.Rule):
    def describe(self) -> RuleManifest:
        return RuleManifest("tiered-spend", "1.0.0",
                            "A percentage off the whole order, growing with its subtotal.")

    def evaluate(self, cart: Cart, config: str) -> Adjustment:
        return price(cart.subtotal, cart.currency, config)
