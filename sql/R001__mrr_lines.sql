-- report.mrr_lines: every invoice line that contributes to MRR, with its service period and
-- its monthly value in the reporting currency (docs/metrics.md). One row per contributing line.
--
-- MRR is built from the service periods of invoice lines (as ChartMogul does) because
-- Stripe keeps no history of a subscription's past states and its events last 30 days.
-- Inputs: stripe.* landing tables, meta.build_settings (one row: the `reporting` config),
-- meta.fx_rates (reporting-currency units per unit of a currency).
-- The macros it uses are in R000__macros.sql.
CREATE OR REPLACE TABLE report.mrr_lines AS
WITH
settings AS (SELECT * FROM meta.build_settings),
fx_rates AS (SELECT * FROM meta.fx_rates),
invoices AS (SELECT * FROM stripe.invoices),
invoice_lines AS (SELECT * FROM stripe.invoice_lines),
prices AS (SELECT * FROM stripe.prices),
subscriptions AS (SELECT * FROM stripe.subscriptions),
invoice_discounts AS (SELECT * FROM stripe.invoice_discounts),

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

-- Open invoices of a subscription that already failed for good: that money is not coming.
failed_subscriptions AS (
    SELECT account_id, id AS subscription_id
    FROM subscriptions
    WHERE status IN ('unpaid', 'incomplete', 'incomplete_expired')
        OR (status = 'canceled' AND cancellation_reason = 'payment_failed')
),

-- churn_recognition = canceled_at: when each canceled (or set to cancel) subscription
-- stops counting. Empty under the default period_end.
cancellations AS (
    SELECT subscriptions.account_id, subscriptions.id AS subscription_id, subscriptions.canceled_at
    FROM subscriptions
    CROSS JOIN settings
    WHERE settings.churn_recognition = 'canceled_at' AND subscriptions.canceled_at IS NOT NULL
),

-- An invoice counts if paid; if open, unless its subscription failed for good; if a draft
-- Stripe will finalize within the hour (a renewal). Void, uncollectible and other drafts
-- never count.
counted_lines AS (
    SELECT
        subscription_lines.*,
        cancellations.canceled_at
    FROM subscription_lines
    CROSS JOIN settings
    LEFT JOIN cancellations
        ON cancellations.account_id = subscription_lines.account_id
        AND cancellations.subscription_id = subscription_lines.subscription_id
    WHERE subscription_lines.invoice_status = 'paid'
        OR (
            subscription_lines.invoice_status = 'open'
            AND settings.include_open_invoices
            AND NOT EXISTS (
                SELECT 1
                FROM failed_subscriptions
                WHERE failed_subscriptions.account_id = subscription_lines.account_id
                    AND failed_subscriptions.subscription_id = subscription_lines.subscription_id
            )
        )
        OR (
            subscription_lines.invoice_status = 'draft'
            AND subscription_lines.auto_advance
            AND subscription_lines.billing_reason LIKE 'subscription%'
        )
),

-- Discounted prorations: each discount_amounts entry with its coupon, as landed with the
-- invoice. Only prorations need it (their value comes from the full-period amount).
proration_discounts AS (
    SELECT
        invoice_lines.account_id,
        invoice_lines.id AS line_id,
        (entry.value ->> 'amount')::BIGINT AS amount,
        invoice_discounts.percent_off
    FROM invoice_lines
    CROSS JOIN json_each(invoice_lines.raw -> 'discount_amounts') AS entry
    JOIN invoice_discounts
        ON invoice_discounts.account_id = invoice_lines.account_id
        AND invoice_discounts.invoice_id = invoice_lines.invoice_id
        AND invoice_discounts.discount_id = entry.value ->> 'discount'
    WHERE invoice_lines.proration AND invoice_lines.discount_amount <> 0
),

-- A proration's percent-off coupons apply to its full-period amount exactly:
-- factor = Π (10000 − basis points) / 10000^n, and the discount amounts they took.
percent_off_prorations AS (
    SELECT
        account_id,
        line_id,
        sum(amount) AS percent_discount_amount,
        list_reduce(list((10000 - round(percent_off * 100))::HUGEINT), lambda a, b: a * b)
            AS factor_numerator,
        list_reduce(list(10000::HUGEINT), lambda a, b: a * b) AS factor_denominator
    FROM proration_discounts
    WHERE percent_off IS NOT NULL
    GROUP BY account_id, line_id
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
        -- with subtract_discounts, a proration's percent-off coupons (NULLs otherwise)
        CASE WHEN settings.subtract_discounts THEN percent_off_prorations.percent_discount_amount END
            AS percent_discount_amount,
        CASE WHEN settings.subtract_discounts THEN percent_off_prorations.factor_numerator END
            AS percent_factor_numerator,
        percent_off_prorations.factor_denominator AS percent_factor_denominator,
        -- the subscription stops counting at canceled_at under churn_recognition canceled_at;
        -- period_end keeps it to the end of the paid period
        least(counted_lines.period_end, coalesce(counted_lines.canceled_at, counted_lines.period_end))
            AS recognized_end,
        -- Prorations: Stripe prorates the full-period price by time and rounds to the cent,
        -- so dividing a proration by its elapsed fraction leaves cents of error. Instead value
        -- it at the full-period amount of its price at its quantity, in the line's currency.
        CASE
            WHEN NOT counted_lines.proration OR NOT counted_lines.quantity >= 0 THEN NULL
            WHEN coalesce(prices.billing_scheme, 'per_unit') = 'per_unit' THEN
                report.unit_amount_in(counted_lines.currency, prices.currency,
                    prices.unit_amount_decimal, prices.unit_amount, prices.currency_options)
                * CASE  -- units after transform_quantity
                    WHEN coalesce(prices.transform_quantity_divide_by, 0) <= 0 THEN counted_lines.quantity
                    WHEN prices.transform_quantity_round = 'up'
                        THEN (counted_lines.quantity + prices.transform_quantity_divide_by - 1)
                            // prices.transform_quantity_divide_by
                    ELSE counted_lines.quantity // prices.transform_quantity_divide_by
                END
            -- a tiers_mode nrr-sync does not know is not guessed at (report.data_quality)
            WHEN prices.billing_scheme = 'tiered' AND prices.tiers_mode IN ('volume', 'graduated')
                AND report.tiers_in(counted_lines.currency, prices.currency, prices.tiers,
                    prices.currency_options) IS NOT NULL
                THEN report.tiered_amount(
                    report.tiers_in(counted_lines.currency, prices.currency, prices.tiers,
                        prices.currency_options),
                    prices.tiers_mode, counted_lines.quantity)
        END AS full_period_amount
    FROM counted_lines
    CROSS JOIN settings
    JOIN prices
        ON prices.account_id = counted_lines.account_id
        AND prices.id = counted_lines.price_id
    LEFT JOIN percent_off_prorations
        ON percent_off_prorations.account_id = counted_lines.account_id
        AND percent_off_prorations.line_id = counted_lines.line_id
    WHERE prices.type = 'recurring'
        AND prices.recurring_interval IN ('day', 'week', 'month', 'year')
        AND coalesce(prices.recurring_interval_count, 0) > 0
        AND (
            prices.recurring_usage_type = 'licensed'
            OR (prices.recurring_usage_type = 'metered' AND settings.include_metered)
        )
),

valued_lines AS (
    SELECT
        recurring_lines.*,
        CASE
            WHEN NOT recurring_lines.proration THEN 'interval'
            WHEN recurring_lines.full_period_amount > 0 AND recurring_lines.amount <> 0 THEN 'full_price'
            ELSE 'period_ratio'   -- the full-period amount cannot be known
        END AS valuation,
        -- for prorations: the price's billing cycle ending at period_end (in UTC, as Stripe
        -- bills) and the line's own period, in seconds, for the period-ratio fallback
        CASE WHEN recurring_lines.proration THEN date_diff(
            'second',
            CASE recurring_lines.recurring_interval
                WHEN 'month' THEN timezone('UTC', recurring_lines.period_end) - to_months(recurring_lines.recurring_interval_count)
                WHEN 'year' THEN timezone('UTC', recurring_lines.period_end) - to_years(recurring_lines.recurring_interval_count)
                WHEN 'week' THEN timezone('UTC', recurring_lines.period_end) - to_days(7 * recurring_lines.recurring_interval_count)
                ELSE timezone('UTC', recurring_lines.period_end) - to_days(recurring_lines.recurring_interval_count)
            END,
            timezone('UTC', recurring_lines.period_end)
        ) END AS cycle_seconds,
        CASE WHEN recurring_lines.proration
            THEN epoch_ms(recurring_lines.period_end) // 1000 - epoch_ms(recurring_lines.period_start) // 1000
        END AS line_seconds
    FROM recurring_lines
),

-- monthly value in minor units of the line's currency, exact to 10 decimal places
monthly_lines AS (
    SELECT
        valued_lines.*,
        CASE
            WHEN valuation = 'interval' THEN report.divide_exact(
                net_amount::HUGEINT * interval_months_denominator,
                interval_months_numerator)
            -- percent-off coupons: full amount x Π(1 − percent_off / 100) x net / (what they
            -- left), so amount-off coupons and inclusive tax keep their ratio
            WHEN valuation = 'full_price' AND percent_factor_numerator IS NOT NULL THEN CASE
                WHEN percent_factor_numerator = 0 OR amount = percent_discount_amount THEN 0
                ELSE report.divide_exact(
                    report.divide_exact(
                        report.divide_exact(full_period_amount * net_amount,
                            abs(amount - percent_discount_amount)) * percent_factor_numerator,
                        percent_factor_denominator) * interval_months_denominator,
                    interval_months_numerator)
            END
            -- sign(amount) x full amount x (net / amount) = full amount x net / |amount|
            WHEN valuation = 'full_price' THEN report.divide_exact(
                report.divide_exact(full_period_amount * net_amount, abs(amount)) * interval_months_denominator,
                interval_months_numerator)
            ELSE report.divide_exact(
                net_amount::HUGEINT * cycle_seconds * interval_months_denominator,
                line_seconds::HUGEINT * interval_months_numerator)
        END AS monthly_minor
    FROM valued_lines
),

-- Flexible billing mode: a credit proration that names the line it credits
-- (parent.<type>.proration_details.credited_items) takes back what that line counted: minus
-- its monthly value, whatever the credit's own prorated and rounded amounts, so the two
-- cancel exactly over the credited rest of the period (a discount that has ended since is
-- taken back as it was counted). A credit whose credited line is not counted here (not
-- landed, or on an invoice that does not count) keeps the proration rule above.
credited_lines AS (
    SELECT credit.account_id, credit.line_id, -sum(credited.monthly_minor) AS monthly_minor
    FROM monthly_lines AS credit
    JOIN invoice_lines
        ON invoice_lines.account_id = credit.account_id AND invoice_lines.id = credit.line_id
    CROSS JOIN json_each(invoice_lines.raw -> 'parent' -> credit.parent_type
        -> 'proration_details' -> 'credited_items' -> 'invoice_line_items') AS credited_item
    JOIN monthly_lines AS credited
        ON credited.account_id = credit.account_id
        AND credited.line_id = credited_item.value ->> '$'
    WHERE credit.proration
    GROUP BY credit.account_id, credit.line_id
),

flexible_lines AS (
    SELECT monthly_lines.* REPLACE (
        CASE WHEN credited_lines.line_id IS NULL THEN valuation ELSE 'credited_line' END
            AS valuation,
        coalesce(credited_lines.monthly_minor, monthly_lines.monthly_minor) AS monthly_minor
    )
    FROM monthly_lines
    LEFT JOIN credited_lines
        ON credited_lines.account_id = monthly_lines.account_id
        AND credited_lines.line_id = monthly_lines.line_id
),

converted_lines AS (
    SELECT
        flexible_lines.*,
        report.minor_unit(currency) AS minor_unit,
        (SELECT rate FROM fx_rates WHERE fx_rates.currency = flexible_lines.currency) AS fx_rate
    FROM flexible_lines
),

-- the rows of the table, as the model defines them
final AS (
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
        -- exact products, no rounding: monthly value in the line's currency (major units) and in
        -- the reporting currency
        monthly_minor * minor_unit AS monthly_amount,
        fx_rate,
        monthly_minor * minor_unit * fx_rate AS monthly_mrr
    FROM converted_lines
    WHERE recognized_end > period_start
)

SELECT * FROM final;

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
