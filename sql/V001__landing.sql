-- Landing tables: Stripe objects as fetched, one row per object.
-- Typed columns hold what the report models need; `raw` keeps the whole object so
-- analysts (and future models) can reach any field without a re-sync.
-- Amounts are integers in minor units, exactly as Stripe sends them.
CREATE SCHEMA IF NOT EXISTS stripe;

CREATE TABLE IF NOT EXISTS stripe.customers (
    account_id   VARCHAR NOT NULL,
    id           VARCHAR NOT NULL,
    created      TIMESTAMPTZ,
    name         VARCHAR,
    email        VARCHAR,
    currency     VARCHAR,
    country      VARCHAR,          -- address.country
    metadata     JSON,
    deleted      BOOLEAN NOT NULL DEFAULT false,
    livemode     BOOLEAN,
    raw          JSON,
    synced_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, id)
);

CREATE TABLE IF NOT EXISTS stripe.products (
    account_id   VARCHAR NOT NULL,
    id           VARCHAR NOT NULL,
    created      TIMESTAMPTZ,
    name         VARCHAR,
    active       BOOLEAN,
    metadata     JSON,
    deleted      BOOLEAN NOT NULL DEFAULT false,
    raw          JSON,
    synced_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, id)
);

CREATE TABLE IF NOT EXISTS stripe.prices (
    account_id                 VARCHAR NOT NULL,
    id                         VARCHAR NOT NULL,
    product_id                 VARCHAR,
    created                    TIMESTAMPTZ,
    active                     BOOLEAN,
    currency                   VARCHAR,
    type                       VARCHAR,   -- recurring | one_time
    billing_scheme             VARCHAR,   -- per_unit | tiered
    unit_amount                BIGINT,
    unit_amount_decimal        DECIMAL(38, 12),
    tiers_mode                 VARCHAR,   -- volume | graduated
    tiers                      JSON,      -- [{up_to, unit_amount_decimal, flat_amount_decimal, ...}]
    recurring_interval         VARCHAR,   -- day | week | month | year
    recurring_interval_count   INTEGER,
    recurring_usage_type       VARCHAR,   -- licensed | metered
    transform_quantity_divide_by BIGINT,
    transform_quantity_round   VARCHAR,   -- up | down
    tax_behavior               VARCHAR,   -- inclusive | exclusive | unspecified
    nickname                   VARCHAR,
    metadata                   JSON,
    deleted                    BOOLEAN NOT NULL DEFAULT false,
    raw                        JSON,
    synced_at                  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, id)
);

CREATE TABLE IF NOT EXISTS stripe.subscriptions (
    account_id            VARCHAR NOT NULL,
    id                    VARCHAR NOT NULL,
    customer_id           VARCHAR,
    status                VARCHAR,   -- trialing | active | past_due | unpaid | canceled | incomplete | incomplete_expired | paused
    currency              VARCHAR,
    created               TIMESTAMPTZ,
    start_date            TIMESTAMPTZ,
    billing_cycle_anchor  TIMESTAMPTZ,
    trial_start           TIMESTAMPTZ,
    trial_end             TIMESTAMPTZ,
    cancel_at_period_end  BOOLEAN,
    cancel_at             TIMESTAMPTZ,
    canceled_at           TIMESTAMPTZ,
    ended_at              TIMESTAMPTZ,
    cancellation_reason   VARCHAR,   -- cancellation_details.reason
    collection_method     VARCHAR,
    pause_collection_behavior VARCHAR,
    metadata              JSON,
    raw                   JSON,
    synced_at             TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, id)
);

CREATE TABLE IF NOT EXISTS stripe.subscription_items (
    account_id            VARCHAR NOT NULL,
    id                    VARCHAR NOT NULL,
    subscription_id       VARCHAR,
    price_id              VARCHAR,
    quantity              BIGINT,
    created               TIMESTAMPTZ,
    current_period_start  TIMESTAMPTZ,
    current_period_end    TIMESTAMPTZ,
    metadata              JSON,
    raw                   JSON,
    synced_at             TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, id)
);

CREATE TABLE IF NOT EXISTS stripe.invoices (
    account_id        VARCHAR NOT NULL,
    id                VARCHAR NOT NULL,
    customer_id       VARCHAR,
    subscription_id   VARCHAR,   -- parent.subscription_details.subscription
    status            VARCHAR,   -- draft | open | paid | uncollectible | void
    billing_reason    VARCHAR,
    auto_advance      BOOLEAN,
    collection_method VARCHAR,
    currency          VARCHAR,
    created           TIMESTAMPTZ,
    period_start      TIMESTAMPTZ,
    period_end        TIMESTAMPTZ,
    finalized_at      TIMESTAMPTZ,
    paid_at           TIMESTAMPTZ,
    voided_at         TIMESTAMPTZ,
    subtotal          BIGINT,
    total             BIGINT,
    amount_due        BIGINT,
    amount_paid       BIGINT,
    line_count        INTEGER,   -- lines landed for this invoice
    lines_complete    BOOLEAN,   -- true once every page of lines was fetched
    metadata          JSON,
    raw               JSON,      -- the invoice without its embedded lines (they live in invoice_lines)
    synced_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, id)
);

CREATE TABLE IF NOT EXISTS stripe.invoice_lines (
    account_id            VARCHAR NOT NULL,
    id                    VARCHAR NOT NULL,
    invoice_id            VARCHAR NOT NULL,
    parent_type           VARCHAR,   -- subscription_item_details | invoice_item_details
    subscription_id       VARCHAR,
    subscription_item_id  VARCHAR,
    invoice_item_id       VARCHAR,
    proration             BOOLEAN,
    price_id              VARCHAR,   -- pricing.price_details.price
    product_id            VARCHAR,   -- pricing.price_details.product
    currency              VARCHAR,
    amount                BIGINT,
    quantity              BIGINT,
    period_start          TIMESTAMPTZ,
    period_end            TIMESTAMPTZ,
    discount_amount       BIGINT NOT NULL DEFAULT 0,   -- sum of discount_amounts[].amount
    inclusive_tax_amount  BIGINT NOT NULL DEFAULT 0,   -- sum of taxes[].amount where tax_behavior = inclusive
    exclusive_tax_amount  BIGINT NOT NULL DEFAULT 0,   -- sum of taxes[].amount where tax_behavior = exclusive
    description           VARCHAR,
    raw                   JSON,
    synced_at             TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, id)
);
