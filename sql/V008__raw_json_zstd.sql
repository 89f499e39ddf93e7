-- The raw JSON of every landing table, compressed with zstd instead of DuckDB's default
-- choice for text (dictionary and FSST). JSON objects repeat their keys and most of their
-- values, which a general-purpose compressor finds and FSST's short symbols do not: the
-- raw JSON of invoices and lines takes a sixth of the space, the whole file 40 % at a
-- million invoices (docs/benchmarks.md, section 6), so the working copy made on every run
-- and each checkpoint's writes shrink with it. Scanning it is no slower; reading a few rows'
-- raw JSON decompresses their whole segment, which is why the models read the fields
-- they need from typed columns.
--
-- DuckDB sets a column's compression only when the table is created, so each table is
-- created anew with the same columns in the same order, filled, and put in place of the
-- old one. A file landed before this migration keeps its size on disk (DuckDB reuses the
-- freed blocks for what is written next); a new backfill writes the smaller file.

CREATE TABLE stripe.customers__zstd (
    account_id VARCHAR,
    id VARCHAR,
    created TIMESTAMPTZ,
    "name" VARCHAR,
    email VARCHAR,
    currency VARCHAR,
    country VARCHAR,
    metadata JSON,
    deleted BOOLEAN DEFAULT false NOT NULL,
    livemode BOOLEAN,
    raw JSON USING COMPRESSION zstd,
    synced_at TIMESTAMPTZ NOT NULL,
    balance BIGINT,
    PRIMARY KEY(account_id, id)
);
INSERT INTO stripe.customers__zstd SELECT * FROM stripe.customers;
DROP TABLE stripe.customers;
ALTER TABLE stripe.customers__zstd RENAME TO customers;

CREATE TABLE stripe.products__zstd (
    account_id VARCHAR,
    id VARCHAR,
    created TIMESTAMPTZ,
    "name" VARCHAR,
    active BOOLEAN,
    metadata JSON,
    deleted BOOLEAN DEFAULT false NOT NULL,
    raw JSON USING COMPRESSION zstd,
    synced_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY(account_id, id)
);
INSERT INTO stripe.products__zstd SELECT * FROM stripe.products;
DROP TABLE stripe.products;
ALTER TABLE stripe.products__zstd RENAME TO products;

CREATE TABLE stripe.prices__zstd (
    account_id VARCHAR,
    id VARCHAR,
    product_id VARCHAR,
    created TIMESTAMPTZ,
    active BOOLEAN,
    currency VARCHAR,
    "type" VARCHAR,
    billing_scheme VARCHAR,
    unit_amount BIGINT,
    unit_amount_decimal DECIMAL(38,12),
    tiers_mode VARCHAR,
    tiers JSON,
    recurring_interval VARCHAR,
    recurring_interval_count INTEGER,
    recurring_usage_type VARCHAR,
    transform_quantity_divide_by BIGINT,
    transform_quantity_round VARCHAR,
    tax_behavior VARCHAR,
    nickname VARCHAR,
    metadata JSON,
    deleted BOOLEAN DEFAULT false NOT NULL,
    raw JSON USING COMPRESSION zstd,
    synced_at TIMESTAMPTZ NOT NULL,
    currency_options JSON,
    PRIMARY KEY(account_id, id)
);
INSERT INTO stripe.prices__zstd SELECT * FROM stripe.prices;
DROP TABLE stripe.prices;
ALTER TABLE stripe.prices__zstd RENAME TO prices;

CREATE TABLE stripe.subscriptions__zstd (
    account_id VARCHAR,
    id VARCHAR,
    customer_id VARCHAR,
    status VARCHAR,
    currency VARCHAR,
    created TIMESTAMPTZ,
    start_date TIMESTAMPTZ,
    billing_cycle_anchor TIMESTAMPTZ,
    trial_start TIMESTAMPTZ,
    trial_end TIMESTAMPTZ,
    cancel_at_period_end BOOLEAN,
    cancel_at TIMESTAMPTZ,
    canceled_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ,
    cancellation_reason VARCHAR,
    collection_method VARCHAR,
    pause_collection_behavior VARCHAR,
    metadata JSON,
    raw JSON USING COMPRESSION zstd,
    synced_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY(account_id, id)
);
INSERT INTO stripe.subscriptions__zstd SELECT * FROM stripe.subscriptions;
DROP TABLE stripe.subscriptions;
ALTER TABLE stripe.subscriptions__zstd RENAME TO subscriptions;

CREATE TABLE stripe.subscription_items__zstd (
    account_id VARCHAR,
    id VARCHAR,
    subscription_id VARCHAR,
    price_id VARCHAR,
    quantity BIGINT,
    created TIMESTAMPTZ,
    current_period_start TIMESTAMPTZ,
    current_period_end TIMESTAMPTZ,
    metadata JSON,
    raw JSON USING COMPRESSION zstd,
    synced_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY(account_id, id)
);
INSERT INTO stripe.subscription_items__zstd SELECT * FROM stripe.subscription_items;
DROP TABLE stripe.subscription_items;
ALTER TABLE stripe.subscription_items__zstd RENAME TO subscription_items;

CREATE TABLE stripe.invoices__zstd (
    account_id VARCHAR,
    id VARCHAR,
    customer_id VARCHAR,
    subscription_id VARCHAR,
    status VARCHAR,
    billing_reason VARCHAR,
    auto_advance BOOLEAN,
    collection_method VARCHAR,
    currency VARCHAR,
    created TIMESTAMPTZ,
    period_start TIMESTAMPTZ,
    period_end TIMESTAMPTZ,
    finalized_at TIMESTAMPTZ,
    paid_at TIMESTAMPTZ,
    voided_at TIMESTAMPTZ,
    subtotal BIGINT,
    total BIGINT,
    amount_due BIGINT,
    amount_paid BIGINT,
    line_count INTEGER,
    lines_complete BOOLEAN,
    metadata JSON,
    raw JSON USING COMPRESSION zstd,
    synced_at TIMESTAMPTZ NOT NULL,
    starting_balance BIGINT,
    ending_balance BIGINT,
    amount_remaining BIGINT,
    pre_payment_credit_notes_amount BIGINT,
    post_payment_credit_notes_amount BIGINT,
    PRIMARY KEY(account_id, id)
);
INSERT INTO stripe.invoices__zstd SELECT * FROM stripe.invoices;
DROP TABLE stripe.invoices;
ALTER TABLE stripe.invoices__zstd RENAME TO invoices;

CREATE TABLE stripe.invoice_lines__zstd (
    account_id VARCHAR,
    id VARCHAR,
    invoice_id VARCHAR NOT NULL,
    parent_type VARCHAR,
    subscription_id VARCHAR,
    subscription_item_id VARCHAR,
    invoice_item_id VARCHAR,
    proration BOOLEAN,
    price_id VARCHAR,
    product_id VARCHAR,
    currency VARCHAR,
    amount BIGINT,
    quantity BIGINT,
    period_start TIMESTAMPTZ,
    period_end TIMESTAMPTZ,
    discount_amount BIGINT DEFAULT(0) NOT NULL,
    inclusive_tax_amount BIGINT DEFAULT(0) NOT NULL,
    exclusive_tax_amount BIGINT DEFAULT(0) NOT NULL,
    description VARCHAR,
    raw JSON USING COMPRESSION zstd,
    synced_at TIMESTAMPTZ NOT NULL,
    other_tax_amount BIGINT,
    discount_amounts JSON,
    PRIMARY KEY(account_id, id)
);
INSERT INTO stripe.invoice_lines__zstd SELECT * FROM stripe.invoice_lines;
DROP TABLE stripe.invoice_lines;
ALTER TABLE stripe.invoice_lines__zstd RENAME TO invoice_lines;

CREATE TABLE stripe.invoice_discounts__zstd (
    account_id VARCHAR,
    invoice_id VARCHAR,
    discount_id VARCHAR,
    "position" INTEGER,
    customer_id VARCHAR,
    subscription_id VARCHAR,
    discount_invoice_id VARCHAR,
    promotion_code_id VARCHAR,
    coupon_id VARCHAR,
    percent_off DECIMAL(9,4),
    amount_off BIGINT,
    coupon_currency VARCHAR,
    duration VARCHAR,
    duration_in_months INTEGER,
    starts_at TIMESTAMPTZ,
    ends_at TIMESTAMPTZ,
    deleted BOOLEAN DEFAULT false NOT NULL,
    raw JSON USING COMPRESSION zstd,
    synced_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY(account_id, invoice_id, discount_id)
);
INSERT INTO stripe.invoice_discounts__zstd SELECT * FROM stripe.invoice_discounts;
DROP TABLE stripe.invoice_discounts;
ALTER TABLE stripe.invoice_discounts__zstd RENAME TO invoice_discounts;

CREATE TABLE stripe.credit_notes__zstd (
    account_id VARCHAR,
    id VARCHAR,
    invoice_id VARCHAR,
    customer_id VARCHAR,
    number VARCHAR,
    status VARCHAR,
    "type" VARCHAR,
    reason VARCHAR,
    currency VARCHAR,
    amount BIGINT,
    subtotal BIGINT,
    discount_amount BIGINT,
    pre_payment_amount BIGINT,
    post_payment_amount BIGINT,
    refund_amount BIGINT,
    out_of_band_amount BIGINT,
    customer_balance_transaction_id VARCHAR,
    created TIMESTAMPTZ,
    effective_at TIMESTAMPTZ,
    voided_at TIMESTAMPTZ,
    metadata JSON,
    raw JSON USING COMPRESSION zstd,
    synced_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY(account_id, id)
);
INSERT INTO stripe.credit_notes__zstd SELECT * FROM stripe.credit_notes;
DROP TABLE stripe.credit_notes;
ALTER TABLE stripe.credit_notes__zstd RENAME TO credit_notes;
