-- report.mrr_lines: every invoice line that contributes to MRR, with its service period and
-- its monthly value in the reporting currency (SPEC 6.1). One row per contributing line.
--
-- MRR is built from the service periods of invoice lines (as ChartMogul does) because
-- Stripe keeps no history of a subscription's past states and its events last 30 days.
-- Inputs: stripe.* landing tables, meta.build_settings (one row: the `reporting` config),
-- meta.fx_rates (reporting-currency units per unit of a currency).
CREATE SCHEMA IF NOT EXISTS report;

-- DuckDB's `/` turns DECIMALs into DOUBLE, and money must stay exact. This divides a
-- number by a positive integer, rounding half away from zero at 10 decimal places.
CREATE OR REPLACE MACRO report.divide_exact(x, n) AS (
    (CASE
        WHEN x >= 0 THEN (CAST(CAST(x AS DECIMAL(38, 10)) * 10000000000 AS HUGEINT) * 2 + n) // (2 * n)
        ELSE -((CAST(CAST(-x AS DECIMAL(38, 10)) * 10000000000 AS HUGEINT) * 2 + n) // (2 * n))
    END)::DECIMAL(38, 0) * 0.0000000001
);

CREATE OR REPLACE TABLE report.mrr_lines AS
WITH
settings AS (SELECT * FROM meta.build_settings),
fx_rates AS (SELECT * FROM meta.fx_rates),
invoices AS (SELECT * FROM stripe.invoices),
invoice_lines AS (SELECT * FROM stripe.invoice_lines),
prices AS (SELECT * FROM stripe.prices),
subscriptions AS (SELECT * FROM stripe.subscriptions),

-- Subscription lines, and proration invoice items of a subscription (an upgrade invoiced
-- later or with always_invoice). One-time invoice items are never recurring revenue.
subscription_lines AS (
    SELECT
        invoice_lines.account_id,
        invoices.customer_id,
        coalesce(invoice_lines.subscription_id, invoices.subscription_id) AS subscription_id,
        invoice_lines.invoice_id,
        invoices.status AS invoice_status,
        invoices.auto_advance,
        invoices.billing_reason,
        invoice_lines.id AS line_id,
        invoice_lines.parent_type,
        coalesce(invoice_lines.proration, false) AS proration,
        invoice_lines.price_id,
        invoice_lines.product_id AS line_product_id,
        lower(coalesce(invoice_lines.currency, invoices.currency)) AS currency,
        invoice_lines.amount,
        invoice_lines.quantity,
        invoice_lines.discount_amount,
        invoice_lines.inclusive_tax_amount,
        invoice_lines.period_start,
        invoice_lines.period_end
    FROM invoice_lines
    JOIN invoices
        ON invoices.account_id = invoice_lines.account_id
        AND invoices.id = invoice_lines.invoice_id
    WHERE invoices.status IN ('paid', 'open', 'draft')
        AND (
            invoice_lines.parent_type = 'subscription_item_details'
            OR (
                invoice_lines.parent_type = 'invoice_item_details'
                AND invoice_lines.proration
                AND invoice_lines.subscription_id IS NOT NULL
            )
        )
        AND invoice_lines.period_end > invoice_lines.period_start
),

-- An invoice counts if paid; if open, unless its subscription already failed for good (the
-- money is not coming); if a draft Stripe will finalize within the hour (a renewal).
-- Void, uncollectible and other drafts never count.
counted_lines AS (
    SELECT
        subscription_lines.*,
        subscriptions.canceled_at
    FROM subscription_lines
    CROSS JOIN settings
    LEFT JOIN subscriptions
        ON subscriptions.account_id = subscription_lines.account_id
        AND subscriptions.id = subscription_lines.subscription_id
    WHERE subscription_lines.invoice_status = 'paid'
        OR (
            subscription_lines.invoice_status = 'open'
            AND settings.include_open_invoices
            AND coalesce(subscriptions.status, '') NOT IN ('unpaid', 'incomplete', 'incomplete_expired')
            AND NOT (
                coalesce(subscriptions.status, '') = 'canceled'
                AND coalesce(subscriptions.cancellation_reason, '') = 'payment_failed'
            )
        )
        OR (
            subscription_lines.invoice_status = 'draft'
            AND subscription_lines.auto_advance
            AND subscription_lines.billing_reason LIKE 'subscription%'
        )
),

-- Only licensed recurring prices are MRR; metered usage only when the config asks for it.
-- Lines whose price was never landed cannot be valued: report.data_quality lists them.
recurring_lines AS (
    SELECT
        counted_lines.*,
        coalesce(prices.product_id, counted_lines.line_product_id) AS product_id,
        prices.recurring_interval,
        prices.recurring_interval_count,
        prices.recurring_usage_type,
        -- interval months = numerator / denominator: month 1, year 12, week 12/52, day 12/365
        CASE prices.recurring_interval
            WHEN 'year' THEN 12
            WHEN 'week' THEN 12
            WHEN 'day' THEN 12
            ELSE 1
        END * prices.recurring_interval_count AS interval_months_numerator,
        CASE prices.recurring_interval
            WHEN 'week' THEN 52
            WHEN 'day' THEN 365
            ELSE 1
        END AS interval_months_denominator,
        counted_lines.amount
            - CASE WHEN settings.subtract_discounts THEN counted_lines.discount_amount ELSE 0 END
            - counted_lines.inclusive_tax_amount AS net_amount,
        -- churn_recognition = canceled_at: the subscription stops counting the moment it is
        -- canceled or set to cancel; period_end keeps it to the end of the paid period.
        CASE
            WHEN settings.churn_recognition = 'canceled_at' AND counted_lines.canceled_at IS NOT NULL
                THEN least(counted_lines.period_end, counted_lines.canceled_at)
            ELSE counted_lines.period_end
        END AS recognized_end
    FROM counted_lines
    CROSS JOIN settings
    JOIN prices
        ON prices.account_id = counted_lines.account_id
        AND prices.id = counted_lines.price_id
    WHERE prices.type = 'recurring'
        AND prices.recurring_interval IN ('day', 'week', 'month', 'year')
        AND coalesce(prices.recurring_interval_count, 0) > 0
        AND (
            prices.recurring_usage_type = 'licensed'
            OR (prices.recurring_usage_type = 'metered' AND settings.include_metered)
        )
),

-- Prorations: Stripe prorates the full-period price by time and rounds to the cent, so
-- dividing a proration by its elapsed fraction leaves cents of error. Instead value it at
-- the full-period amount of its price at its quantity. Computed once per (price, quantity).
proration_quantities AS (
    SELECT DISTINCT account_id, price_id, quantity
    FROM recurring_lines
    WHERE proration AND quantity IS NOT NULL AND quantity >= 0
),

per_unit_amounts AS (
    SELECT
        proration_quantities.account_id,
        proration_quantities.price_id,
        proration_quantities.quantity,
        coalesce(prices.unit_amount_decimal, prices.unit_amount) * CASE
            WHEN coalesce(prices.transform_quantity_divide_by, 0) <= 0 THEN proration_quantities.quantity
            WHEN prices.transform_quantity_round = 'up'
                THEN (proration_quantities.quantity + prices.transform_quantity_divide_by - 1)
                    // prices.transform_quantity_divide_by
            ELSE proration_quantities.quantity // prices.transform_quantity_divide_by
        END AS full_period_amount
    FROM proration_quantities
    JOIN prices
        ON prices.account_id = proration_quantities.account_id
        AND prices.id = proration_quantities.price_id
    WHERE coalesce(prices.billing_scheme, 'per_unit') = 'per_unit'
),

price_tiers AS (
    SELECT
        proration_quantities.account_id,
        proration_quantities.price_id,
        proration_quantities.quantity,
        prices.tiers_mode,
        unnest(prices.tiers::JSON[]) AS tier,
        generate_subscripts(prices.tiers::JSON[], 1) AS tier_number
    FROM proration_quantities
    JOIN prices
        ON prices.account_id = proration_quantities.account_id
        AND prices.id = proration_quantities.price_id
    WHERE prices.billing_scheme = 'tiered' AND prices.tiers IS NOT NULL
),

tier_bounds AS (
    SELECT
        account_id,
        price_id,
        quantity,
        tiers_mode,
        (tier ->> 'up_to')::BIGINT AS up_to,   -- NULL = infinity (the last tier)
        coalesce(lag((tier ->> 'up_to')::BIGINT) OVER tier_order, 0) AS above,
        coalesce(tier ->> 'unit_amount_decimal', tier ->> 'unit_amount', '0')::DECIMAL(38, 12) AS unit_amount,
        coalesce(tier ->> 'flat_amount_decimal', tier ->> 'flat_amount', '0')::DECIMAL(38, 12) AS flat_amount
    FROM price_tiers
    WINDOW tier_order AS (PARTITION BY account_id, price_id, quantity ORDER BY tier_number)
),

-- volume: every unit at the rate of the tier the quantity falls in;
-- graduated: each tier prices the units inside it, its flat fee once it is reached.
tiered_amounts AS (
    SELECT
        account_id,
        price_id,
        quantity,
        sum(CASE
            WHEN tiers_mode = 'volume' THEN
                CASE
                    WHEN (up_to IS NULL OR quantity <= up_to) AND (quantity > above OR above = 0)
                        THEN quantity * unit_amount + flat_amount
                    ELSE 0
                END
            ELSE
                CASE
                    WHEN quantity > above
                        THEN (least(quantity, coalesce(up_to, quantity)) - above) * unit_amount + flat_amount
                    ELSE 0
                END
        END) AS full_period_amount
    FROM tier_bounds
    GROUP BY ALL
),

full_period_amounts AS (
    SELECT * FROM per_unit_amounts
    UNION ALL
    SELECT * FROM tiered_amounts
),

valued_lines AS (
    SELECT
        recurring_lines.*,
        full_period_amounts.full_period_amount,
        CASE
            WHEN NOT recurring_lines.proration THEN 'interval'
            WHEN full_period_amounts.full_period_amount > 0 AND recurring_lines.amount <> 0 THEN 'full_price'
            ELSE 'period_ratio'   -- the full-period amount cannot be known
        END AS valuation,
        -- the price's billing cycle ending at period_end, in UTC as Stripe bills
        date_diff(
            'second',
            CASE recurring_lines.recurring_interval
                WHEN 'month' THEN timezone('UTC', recurring_lines.period_end) - to_months(recurring_lines.recurring_interval_count)
                WHEN 'year' THEN timezone('UTC', recurring_lines.period_end) - to_years(recurring_lines.recurring_interval_count)
                WHEN 'week' THEN timezone('UTC', recurring_lines.period_end) - to_days(7 * recurring_lines.recurring_interval_count)
                ELSE timezone('UTC', recurring_lines.period_end) - to_days(recurring_lines.recurring_interval_count)
            END,
            timezone('UTC', recurring_lines.period_end)
        ) AS cycle_seconds,
        date_diff('second', timezone('UTC', recurring_lines.period_start), timezone('UTC', recurring_lines.period_end)) AS line_seconds
    FROM recurring_lines
    LEFT JOIN full_period_amounts
        ON full_period_amounts.account_id = recurring_lines.account_id
        AND full_period_amounts.price_id = recurring_lines.price_id
        AND full_period_amounts.quantity = recurring_lines.quantity
        AND recurring_lines.proration
),

-- monthly value in minor units of the line's currency, exact to 10 decimal places
monthly_lines AS (
    SELECT
        valued_lines.*,
        CASE valuation
            WHEN 'interval' THEN report.divide_exact(
                net_amount::HUGEINT * interval_months_denominator,
                interval_months_numerator)
            -- sign(amount) x full amount x (net / amount) = full amount x net / |amount|
            WHEN 'full_price' THEN report.divide_exact(
                report.divide_exact(full_period_amount * net_amount, abs(amount)) * interval_months_denominator,
                interval_months_numerator)
            ELSE report.divide_exact(
                net_amount::HUGEINT * cycle_seconds * interval_months_denominator,
                line_seconds::HUGEINT * interval_months_numerator)
        END AS monthly_minor
    FROM valued_lines
),

converted_lines AS (
    SELECT
        monthly_lines.*,
        CASE
            WHEN currency IN ('bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf')
                THEN 1.00
            ELSE 0.01
        END::DECIMAL(3, 2) AS minor_unit,
        (SELECT rate FROM fx_rates WHERE fx_rates.currency = monthly_lines.currency) AS fx_rate
    FROM monthly_lines
)

SELECT
    account_id,
    customer_id,
    subscription_id,
    invoice_id,
    invoice_status,
    line_id,
    parent_type,
    proration,
    price_id,
    product_id,
    currency,
    recurring_interval,
    recurring_interval_count,
    recurring_usage_type,
    quantity,
    amount,
    discount_amount,
    inclusive_tax_amount,
    net_amount,
    period_start,
    period_end,
    recognized_end,
    valuation,
    full_period_amount,
    CAST(monthly_minor * minor_unit AS DECIMAL(38, 10)) AS monthly_amount,   -- line currency
    fx_rate,
    CAST(monthly_minor * minor_unit * fx_rate AS DECIMAL(38, 10)) AS monthly_mrr   -- reporting currency
FROM converted_lines
WHERE recognized_end > period_start;

-- A currency without a rate would silently drop revenue: fail the build instead.
SELECT error(
    'No fx rate for currencies ' || string_agg(DISTINCT currency, ', ' ORDER BY currency)
    || ' used by counted invoice lines: add them to reporting.fx_rates in the config '
    || '(units of ' || any_value(settings.reporting_currency) || ' per 1 unit).'
)
FROM report.mrr_lines
CROSS JOIN meta.build_settings AS settings
WHERE fx_rate IS NULL
HAVING count(*) > 0;
