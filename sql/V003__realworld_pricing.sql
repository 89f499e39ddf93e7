-- What real accounts bring beyond V001 (docs/tables.md):
-- a price's amounts in other currencies, as Stripe's expand[]=currency_options gives them:
-- {"eur": {"unit_amount": 920, "unit_amount_decimal": "920", "tiers": [...],
--          "tax_behavior": "inclusive", ...}, ...} (the price's own currency included).
ALTER TABLE stripe.prices ADD COLUMN IF NOT EXISTS currency_options JSON;

-- The discounts of each invoice, as expand[]=data.discounts.source.coupon gives them: the
-- discount with its coupon. One row per (invoice, discount); a forever discount repeats on
-- every invoice of its subscription. Lines name these discounts in discount_amounts.
CREATE TABLE IF NOT EXISTS stripe.invoice_discounts (
    account_id          VARCHAR NOT NULL,
    invoice_id          VARCHAR NOT NULL,
    discount_id         VARCHAR NOT NULL,
    position            INTEGER,          -- order on the invoice (stacked discounts apply in order)
    customer_id         VARCHAR,
    subscription_id     VARCHAR,          -- discount.subscription (NULL for an invoice-level one)
    discount_invoice_id VARCHAR,          -- discount.invoice: set when put on one invoice only
    promotion_code_id   VARCHAR,
    coupon_id           VARCHAR,          -- discount.source.coupon
    percent_off         DECIMAL(9, 4),    -- coupon.percent_off
    amount_off          BIGINT,           -- coupon.amount_off, minor units of coupon_currency
    coupon_currency     VARCHAR,
    duration            VARCHAR,          -- forever | once | repeating
    duration_in_months  INTEGER,
    starts_at           TIMESTAMPTZ,      -- discount.start
    ends_at             TIMESTAMPTZ,      -- discount.end (repeating coupons)
    deleted             BOOLEAN NOT NULL DEFAULT false,
    raw                 JSON,             -- the discount with its coupon
    synced_at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, invoice_id, discount_id)
);
