-- What real accounts bring beyond V001 (docs/tables.md):
-- a price's amounts in other currencies, as Stripe's expand[]=currency_options gives them:
-- {"eur": {"unit_amount": 920, "unit_amount_decimal": "920", "tiers": [...],
--          "tax_behavior": "inclusive", ...}, ...} (the price's own currency included).
ALTER TABLE stripe.prices ADD COLUMN IF NOT EXISTS currency_options JSON;
