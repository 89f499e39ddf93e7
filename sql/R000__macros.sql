-- Macros the report models share: exact division of money, tiered amounts, a price's
-- amounts in another currency, the decimals of each currency, the rules for which lines
-- can count at all, and the discount entries of prorations. Plain DuckDB macros in schema
-- report, so a reader can use them by hand too.
CREATE SCHEMA IF NOT EXISTS report;

-- DuckDB's `/` turns DECIMALs into DOUBLE, and money must stay exact. This divides a
-- number by a positive integer, rounding half away from zero at 10 decimal places.
CREATE OR REPLACE MACRO report.divide_exact(x, n) AS (
    CASE
        WHEN n = 1 THEN CAST(x AS DECIMAL(38, 10))   -- monthly prices: nothing to divide
        WHEN x >= 0 THEN ((CAST(CAST(x AS DECIMAL(38, 10)) * 10000000000 AS HUGEINT) * 2 + n) // (2 * n))
            ::DECIMAL(38, 0) * 0.0000000001
        ELSE -((CAST(CAST(-x AS DECIMAL(38, 10)) * 10000000000 AS HUGEINT) * 2 + n) // (2 * n))
            ::DECIMAL(38, 0) * 0.0000000001
    END
);

-- Fields of the i-th tier (1-based) of a price's tiers JSON; NULL up_to = infinity.
CREATE OR REPLACE MACRO report.tier_up_to(tiers, i) AS
    CASE WHEN i >= 1 THEN (tiers -> (i - 1)::INTEGER ->> 'up_to')::BIGINT END;
CREATE OR REPLACE MACRO report.tier_unit(tiers, i) AS coalesce(
    tiers -> (i - 1)::INTEGER ->> 'unit_amount_decimal', tiers -> (i - 1)::INTEGER ->> 'unit_amount', '0'
)::DECIMAL(38, 12);
CREATE OR REPLACE MACRO report.tier_flat(tiers, i) AS coalesce(
    tiers -> (i - 1)::INTEGER ->> 'flat_amount_decimal', tiers -> (i - 1)::INTEGER ->> 'flat_amount', '0'
)::DECIMAL(38, 12);

-- The full-period amount of a tiered price at a quantity, in minor units. tiers is Stripe's
-- JSON list [{up_to (NULL = infinity), unit_amount_decimal, flat_amount_decimal}, ...]:
-- volume prices every unit at the tier the quantity falls in, plus that tier's flat fee;
-- graduated prices the units inside each tier at its rate, plus its flat fee once reached.
CREATE OR REPLACE MACRO report.tiered_amount(tiers, tiers_mode, quantity) AS (
    list_sum(list_transform(
        range(1, json_array_length(tiers)::BIGINT + 1),
        lambda i: CASE
            WHEN tiers_mode = 'volume' THEN
                CASE
                    WHEN (report.tier_up_to(tiers, i) IS NULL OR quantity <= report.tier_up_to(tiers, i))
                        AND (i = 1 OR quantity > report.tier_up_to(tiers, i - 1))
                        THEN quantity * report.tier_unit(tiers, i) + report.tier_flat(tiers, i)
                    ELSE 0
                END
            WHEN quantity > coalesce(report.tier_up_to(tiers, i - 1), 0) THEN
                (least(quantity, coalesce(report.tier_up_to(tiers, i), quantity))
                    - coalesce(report.tier_up_to(tiers, i - 1), 0)) * report.tier_unit(tiers, i)
                + report.tier_flat(tiers, i)
            ELSE 0
        END
    ))
);

-- A price's unit amount and tiers in a line's currency: its own when the line is billed in
-- the price's currency, else currency_options[<line currency>] (NULL when not known).
CREATE OR REPLACE MACRO report.unit_amount_in(line_currency, price_currency, unit_amount_decimal,
                                              unit_amount, currency_options) AS
    CASE
        WHEN line_currency = lower(price_currency) THEN coalesce(unit_amount_decimal, unit_amount)
        ELSE coalesce(
            currency_options -> line_currency ->> 'unit_amount_decimal',
            currency_options -> line_currency ->> 'unit_amount'
        )::DECIMAL(38, 12)
    END;
CREATE OR REPLACE MACRO report.tiers_in(line_currency, price_currency, tiers, currency_options) AS
    CASE
        WHEN line_currency = lower(price_currency) THEN tiers
        ELSE currency_options -> line_currency -> 'tiers'
    END;

-- Decimals of a currency's minor unit as Stripe's API counts them (docs.stripe.com/currencies):
-- zero-decimal, three-decimal, and the two-decimal presentment currencies (isk, huf and twd
-- included: Stripe's API keeps two decimals for them). NULL for a currency not listed here:
-- it is valued as two-decimal, Stripe's default, and report.data_quality names it.
CREATE OR REPLACE MACRO report.currency_exponent(currency) AS
    CASE
        WHEN currency IN ('bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf',
                          'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf') THEN 0
        WHEN currency IN ('bhd', 'jod', 'kwd', 'omr', 'tnd') THEN 3
        WHEN currency IN ('usd', 'aed', 'afn', 'all', 'amd', 'ang', 'aoa', 'ars', 'aud', 'awg',
                          'azn', 'bam', 'bbd', 'bdt', 'bgn', 'bmd', 'bnd', 'bob', 'brl', 'bsd',
                          'bwp', 'byn', 'bzd', 'cad', 'cdf', 'chf', 'cny', 'cop', 'crc', 'cve',
                          'czk', 'dkk', 'dop', 'dzd', 'egp', 'etb', 'eur', 'fjd', 'fkp', 'gbp',
                          'gel', 'gip', 'gmd', 'gtq', 'gyd', 'hkd', 'hnl', 'htg', 'huf', 'idr',
                          'ils', 'inr', 'isk', 'jmd', 'kes', 'kgs', 'khr', 'kyd', 'kzt', 'lak',
                          'lbp', 'lkr', 'lrd', 'lsl', 'mad', 'mdl', 'mkd', 'mmk', 'mnt', 'mop',
                          'mur', 'mvr', 'mwk', 'mxn', 'myr', 'mzn', 'nad', 'ngn', 'nio', 'nok',
                          'npr', 'nzd', 'pab', 'pen', 'pgk', 'php', 'pkr', 'pln', 'qar', 'ron',
                          'rsd', 'rub', 'sar', 'sbd', 'scr', 'sek', 'sgd', 'shp', 'sle',
                          'sll', 'sos', 'srd', 'std', 'szl', 'thb', 'tjs', 'top', 'try', 'ttd',
                          'twd', 'tzs', 'uah', 'uyu', 'uzs', 'wst', 'xcd', 'yer', 'zar', 'zmw')
            THEN 2
    END;
CREATE OR REPLACE MACRO report.minor_unit(currency) AS
    CASE coalesce(report.currency_exponent(currency), 2)
        WHEN 0 THEN 1.000
        WHEN 3 THEN 0.001
        ELSE 0.010
    END::DECIMAL(4, 3);

-- Which invoice lines can be MRR at all (docs/metrics.md, "Which invoices count", "Which lines count"). The counting model
-- (R001) keeps the lines these accept; report.data_quality (R008) names the lines they turn
-- away, so the two can never disagree about what "usable" means.

-- Invoices whose lines may count: paid, open and draft. Void and uncollectible never do;
-- which open invoices and drafts count is decided in R001.
CREATE OR REPLACE MACRO report.is_live_invoice(status) AS status IN ('paid', 'open', 'draft');

-- A subscription's own line, or a proration invoice item of a subscription (an upgrade
-- invoiced later or with always_invoice). One-time invoice items are never recurring revenue.
CREATE OR REPLACE MACRO report.is_subscription_line(parent_type, proration, subscription_id) AS
    parent_type = 'subscription_item_details'
    OR (parent_type = 'invoice_item_details' AND proration AND subscription_id IS NOT NULL);

-- A price whose recurrence nrr-sync can turn into a monthly value: recurring, with an
-- interval it knows, a positive interval count and a usage type it knows.
CREATE OR REPLACE MACRO report.is_usable_price(price_type, recurring_interval,
                                               recurring_interval_count, usage_type) AS
    price_type = 'recurring'
    AND recurring_interval IN ('day', 'week', 'month', 'year')
    AND coalesce(recurring_interval_count, 0) > 0
    AND usage_type IN ('licensed', 'metered');

-- Licensed prices are MRR; metered usage only when the config asks for it (include_metered).
CREATE OR REPLACE MACRO report.counts_usage(usage_type, include_metered) AS
    usage_type = 'licensed' OR (usage_type = 'metered' AND include_metered);

-- A proration's discount entry of an amount-off coupon, shown as 0: the coupon is included
-- in the line's amount and what it took is not shown, so report.mrr_lines values the line
-- from its own period and report.data_quality says why.
CREATE OR REPLACE MACRO report.is_included_amount_off(entry_amount, coupon_amount_off) AS
    coupon_amount_off IS NOT NULL AND entry_amount = 0;

-- Each discount_amounts entry of a proration with the coupon of its landed discount: what
-- report.mrr_lines values discounted prorations from, and what report.data_quality checks
-- them against. Entries of 0 are kept: a classic subscription's proration shows its
-- discounts included in its amount, each entry 0, and its coupons still say what was
-- taken off (docs/metrics.md, "Discounts included in a proration").
CREATE OR REPLACE MACRO report.proration_discount_entries() AS TABLE
    WITH
    -- One row per entry: unnest in the select list, never a lateral json_each, which DuckDB
    -- runs by hashing the JSON of every line (gigabytes of raw at a million lines).
    entries AS (
        SELECT
            account_id,
            id AS line_id,
            invoice_id,
            unnest(json_extract(discount_amounts, '$[*]')) AS entry
        FROM stripe.invoice_lines
        WHERE proration AND discount_amounts IS NOT NULL
    )
    SELECT
        entries.account_id,
        entries.line_id,
        (entries.entry ->> 'amount')::BIGINT AS amount,
        invoice_discounts.percent_off,
        invoice_discounts.amount_off
    FROM entries
    JOIN stripe.invoice_discounts AS invoice_discounts
        ON invoice_discounts.account_id = entries.account_id
        AND invoice_discounts.invoice_id = entries.invoice_id
        AND invoice_discounts.discount_id = entries.entry ->> 'discount';
