-- report.mrr_lines: every invoice line that contributes to MRR, with its service period and
-- its monthly value in the reporting currency (docs/metrics.md, "A line's monthly value").
-- One row per line of report.counted_lines (R001, which lines count): this model values them.
--
-- MRR is built from the service periods of invoice lines (as ChartMogul does) because
-- Stripe keeps no history of a subscription's past states and its events last 30 days.
-- Inputs: report.counted_lines, stripe.* landing tables, meta.build_settings (one row: the
-- `reporting` config), meta.fx_rates (reporting-currency units per unit of a currency).
-- The macros it uses are in R000__macros.sql.
CREATE OR REPLACE TABLE report.mrr_lines AS
WITH
settings AS (SELECT * FROM meta.build_settings),
fx_rates AS (SELECT * FROM meta.fx_rates),
counted_lines AS (SELECT * FROM report.counted_lines),
invoice_lines AS (SELECT * FROM stripe.invoice_lines),
prices AS (SELECT * FROM stripe.prices),

-- Discounted prorations: each discount_amounts entry with its coupon (R000). Only
-- prorations need it (their value comes from the full-period amount).
proration_discounts AS (SELECT * FROM report.proration_discount_entries()),

-- A proration's percent-off coupons apply to its full-period amount exactly:
-- factor = Π (10000 − basis points) / 10000^n, the discount amounts they took, and whether
-- they were taken off the amount already (included: every entry 0 on a nonzero line).
percent_off_prorations AS (
    SELECT
        account_id,
        line_id,
        sum(amount) AS percent_discount_amount,
        bool_and(amount = 0) AS discounts_included,
        list_reduce(list((10000 - round(percent_off * 100))::HUGEINT), lambda a, b: a * b)
            AS factor_numerator,
        list_reduce(list(10000::HUGEINT), lambda a, b: a * b) AS factor_denominator
    FROM proration_discounts
    WHERE percent_off IS NOT NULL
    GROUP BY account_id, line_id
),

-- A proration whose amount-off coupon is included in its amount (an entry of 0 naming it):
-- what it took is not shown, so the full-period amount cannot be discounted exactly and the
-- line is valued from its own period (report.data_quality names it).
amount_off_included_prorations AS (
    SELECT DISTINCT account_id, line_id
    FROM proration_discounts
    WHERE report.is_included_amount_off(amount, amount_off)
),

-- What each counted line needs to be valued: its interval in months, its net amount, its
-- percent-off coupons, and for a proration its price's full-period amount or tiers
line_terms AS (
    SELECT
        counted_lines.*,
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
        -- without subtract_discounts, a proration whose percent-off discounts are included
        -- in its amount: the factor that took them off (NULLs otherwise)
        CASE WHEN NOT settings.subtract_discounts AND percent_off_prorations.discounts_included
            THEN percent_off_prorations.factor_numerator END AS included_factor_numerator,
        percent_off_prorations.factor_denominator AS percent_factor_denominator,
        amount_off_included_prorations.line_id IS NOT NULL AS amount_off_included,
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
        END AS per_unit_full_period_amount,
        -- a tiered proration's tiers in its currency, priced in priced_lines below (a
        -- tiers_mode nrr-sync does not know is not guessed at: report.data_quality)
        CASE
            WHEN counted_lines.proration AND counted_lines.quantity >= 0
                AND prices.billing_scheme = 'tiered' AND prices.tiers_mode IN ('volume', 'graduated')
            THEN report.tiers_in(counted_lines.currency, prices.currency, prices.tiers,
                prices.currency_options)
        END AS proration_tiers,
        prices.tiers_mode
    FROM counted_lines
    CROSS JOIN settings
    JOIN prices
        ON prices.account_id = counted_lines.account_id
        AND prices.id = counted_lines.price_id
    LEFT JOIN percent_off_prorations
        ON percent_off_prorations.account_id = counted_lines.account_id
        AND percent_off_prorations.line_id = counted_lines.line_id
    LEFT JOIN amount_off_included_prorations
        ON amount_off_included_prorations.account_id = counted_lines.account_id
        AND amount_off_included_prorations.line_id = counted_lines.line_id
),

-- a proration's full-period amount at its quantity, per unit or by its tiers. The tiers are
-- a column by now, not their lookup in the line's currency: report.tiered_amount repeats
-- its argument about fifteen times, and every copy of the lookup was planned and run.
priced_lines AS (
    SELECT
        line_terms.* EXCLUDE (per_unit_full_period_amount, proration_tiers, tiers_mode),
        coalesce(
            per_unit_full_period_amount,
            CASE WHEN proration_tiers IS NOT NULL
                THEN report.tiered_amount(proration_tiers, tiers_mode, quantity) END
        ) AS full_period_amount
    FROM line_terms
),

valued_lines AS (
    SELECT
        priced_lines.*,
        CASE
            WHEN NOT priced_lines.proration THEN 'interval'
            WHEN priced_lines.full_period_amount > 0 AND priced_lines.amount <> 0
                AND NOT priced_lines.amount_off_included THEN 'full_price'
            ELSE 'period_ratio'   -- the full-period amount cannot be known
        END AS valuation,
        -- for prorations: the price's billing cycle ending at period_end (in UTC, as Stripe
        -- bills) and the line's own period, in seconds, for the period-ratio fallback
        CASE WHEN priced_lines.proration THEN date_diff(
            'second',
            CASE priced_lines.recurring_interval
                WHEN 'month' THEN timezone('UTC', priced_lines.period_end) - to_months(priced_lines.recurring_interval_count)
                WHEN 'year' THEN timezone('UTC', priced_lines.period_end) - to_years(priced_lines.recurring_interval_count)
                WHEN 'week' THEN timezone('UTC', priced_lines.period_end) - to_days(7 * priced_lines.recurring_interval_count)
                ELSE timezone('UTC', priced_lines.period_end) - to_days(priced_lines.recurring_interval_count)
            END,
            timezone('UTC', priced_lines.period_end)
        ) END AS cycle_seconds,
        CASE WHEN priced_lines.proration
            THEN epoch_ms(priced_lines.period_end) // 1000 - epoch_ms(priced_lines.period_start) // 1000
        END AS line_seconds
    FROM priced_lines
),

-- A line's monthly value is worked out in steps, each its own column, because a macro
-- repeats its argument: report.divide_exact nested three deep repeated the innermost
-- product 64 times, and DuckDB planned and ran every copy.

-- step 1, full-price prorations: the full-period amount's share that the line's net keeps
full_price_shares AS (
    SELECT
        valued_lines.*,
        CASE
            WHEN valuation <> 'full_price' THEN NULL
            -- percent-off coupons: full amount x net / (what they left), so amount-off
            -- coupons and inclusive tax keep their ratio (step 2 applies the percentages)
            WHEN percent_factor_numerator IS NOT NULL THEN CASE
                -- the coupons took it all: 0, never a division by 0
                WHEN percent_factor_numerator = 0 OR amount = percent_discount_amount THEN 0
                ELSE report.divide_exact(full_period_amount * net_amount,
                    abs(amount - percent_discount_amount))
            END
            -- the list price before the included coupons, with the line's inclusive tax in the
            -- share it has of the undiscounted amount, as on a renewal line:
            -- full amount x (amount − tax x factor) / |amount| (step 2 divides the factor out)
            WHEN included_factor_numerator IS NOT NULL THEN report.divide_exact(
                full_period_amount * (amount::HUGEINT * percent_factor_denominator
                    - inclusive_tax_amount::HUGEINT * included_factor_numerator),
                abs(amount))
            -- sign(amount) x full amount x (net / amount) = full amount x net / |amount|
            ELSE report.divide_exact(full_period_amount * net_amount, abs(amount))
        END AS full_price_share
    FROM valued_lines
),

-- step 2: the value for one billing interval, in minor units of the line's currency
interval_values AS (
    SELECT
        full_price_shares.*,
        CASE
            WHEN valuation = 'interval' THEN net_amount
            -- percent-off coupons: x Π(1 − percent_off / 100) (0 where they took it all)
            WHEN valuation = 'full_price' AND percent_factor_numerator IS NOT NULL THEN
                report.divide_exact(full_price_share * percent_factor_numerator,
                    percent_factor_denominator)
            WHEN valuation = 'full_price' AND included_factor_numerator IS NOT NULL THEN
                report.divide_exact(full_price_share, percent_factor_denominator)
            WHEN valuation = 'full_price' THEN full_price_share
        END AS interval_minor
    FROM full_price_shares
),

-- step 3: monthly value in minor units of the line's currency, exact to 10 decimal places
-- (materialized: read three times below, and computed three times otherwise)
monthly_lines AS MATERIALIZED (
    SELECT
        interval_values.* EXCLUDE (full_price_share, interval_minor),
        CASE
            WHEN valuation = 'period_ratio' THEN report.divide_exact(
                net_amount::HUGEINT * cycle_seconds * interval_months_denominator,
                line_seconds::HUGEINT * interval_months_numerator)
            ELSE report.divide_exact(interval_minor * interval_months_denominator,
                interval_months_numerator)
        END AS monthly_minor
    FROM interval_values
),

-- Flexible billing mode: a credit proration that names the line it credits
-- (parent.<type>.proration_details.credited_items) takes back what that line counted: minus
-- its monthly value, whatever the credit's own prorated and rounded amounts, so the two
-- cancel exactly over the credited rest of the period (a discount that has ended since is
-- taken back as it was counted). A credit whose credited line is not counted here (not
-- landed, or on an invoice that does not count) keeps the proration rule above.
credited_items AS (
    -- unnest in the select list, never a lateral json_each (R000, proration_discount_entries).
    -- The ids have a column of their own (V009), so no line's raw JSON is read here.
    SELECT
        account_id,
        id AS line_id,
        unnest(json_extract_string(credited_line_ids, '$[*]')) AS credited_line_id
    FROM invoice_lines
    WHERE proration AND credited_line_ids IS NOT NULL
),

credited_lines AS (
    SELECT credit.account_id, credit.line_id, -sum(credited.monthly_minor) AS monthly_minor
    FROM monthly_lines AS credit
    JOIN credited_items
        ON credited_items.account_id = credit.account_id
        AND credited_items.line_id = credit.line_id
    JOIN monthly_lines AS credited
        ON credited.account_id = credit.account_id
        AND credited.line_id = credited_items.credited_line_id
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

-- each currency of the lines once, with its minor unit and rate: asked per currency, not
-- per line (a few rows against a million)
currencies AS (
    SELECT
        line_currencies.currency,
        report.minor_unit(line_currencies.currency) AS minor_unit,
        fx_rates.rate AS fx_rate
    FROM (SELECT DISTINCT currency FROM monthly_lines) AS line_currencies
    LEFT JOIN fx_rates
        ON fx_rates.currency = line_currencies.currency
),

converted_lines AS (
    SELECT
        flexible_lines.*,
        currencies.minor_unit,
        currencies.fx_rate
    FROM flexible_lines
    LEFT JOIN currencies
        ON currencies.currency IS NOT DISTINCT FROM flexible_lines.currency
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
)

SELECT * FROM final;

-- A currency without a rate would silently drop revenue: fail the build instead. (A line
-- without a currency is named "(none)": a NULL message would make error() return NULL.)
SELECT error(
    'No fx rate for currencies '
    || string_agg(DISTINCT coalesce(currency, '(none)'), ', ' ORDER BY coalesce(currency, '(none)'))
    || ' used by counted invoice lines: add them to reporting.fx_rates in the config '
    || '(units of ' || any_value(settings.reporting_currency) || ' per 1 unit).'
)
FROM report.mrr_lines
CROSS JOIN meta.build_settings AS settings
WHERE fx_rate IS NULL
HAVING count(*) > 0;
