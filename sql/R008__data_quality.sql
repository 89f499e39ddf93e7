-- report.data_quality: one row per finding that may make the numbers wrong or surprising.
-- severity: error (numbers are wrong until fixed), warning (probably wrong), info (expected,
-- worth knowing). A clean account has no error rows.

CREATE OR REPLACE TABLE report.data_quality AS
WITH
settings AS (SELECT * FROM report.build_info),
summary AS (SELECT * FROM report.mrr_summary),
-- NOT MATERIALIZED: read by several checks, and DuckDB would otherwise copy these tables
-- (a million rows each at 100k customers) before scanning the copy, where each check can
-- scan the table for only the columns and rows it needs (-0.3 s of 2.4 s at 100k customers)
mrr_lines AS NOT MATERIALIZED (SELECT * FROM report.mrr_lines),
invoices AS NOT MATERIALIZED (SELECT * FROM stripe.invoices),
invoice_lines AS NOT MATERIALIZED (SELECT * EXCLUDE (raw) FROM stripe.invoice_lines),
-- The raw JSON of only the lines that may carry a tax of another behavior: reading and
-- parsing every line's raw JSON took most of this model's time at a million lines.
lines_with_other_taxes AS (
    SELECT account_id, id, raw
    FROM stripe.invoice_lines
    WHERE other_tax_amount IS NULL OR other_tax_amount <> 0  -- NULL: not known, so read it
),
-- The discount entries of the lines whose entries can matter below (nonzero, or on a
-- proration), landed apart from raw (V007): this model took 2.0-2.5 s at a million lines
-- reading them from raw, 1.5-1.7 s from their own column.
lines_with_discount_entries AS (
    SELECT account_id, id, discount_amounts
    FROM stripe.invoice_lines
    WHERE discount_amounts IS NOT NULL AND (discount_amount IS DISTINCT FROM 0 OR proration)
),
prices AS NOT MATERIALIZED (SELECT * FROM stripe.prices),
subscriptions AS NOT MATERIALIZED (SELECT * FROM stripe.subscriptions),
subscription_items AS (SELECT * FROM stripe.subscription_items),
customers AS (SELECT * FROM stripe.customers),
credit_notes AS (SELECT * FROM stripe.credit_notes),
invoice_discounts AS (SELECT * FROM stripe.invoice_discounts),

-- must never happen: the roll-forward identity of mrr_summary
identity_violations AS (
    SELECT
        'roll_forward_identity' AS check, 'error' AS severity,
        'mrr_end ' || mrr_end || ' <> mrr_start ' || mrr_start || ' + movements '
            || (new_mrr + expansion_mrr + reactivation_mrr - contraction_mrr - churned_mrr) AS detail,
        NULL::VARCHAR AS account_id, NULL::VARCHAR AS customer_id, NULL::VARCHAR AS subscription_id,
        NULL::VARCHAR AS invoice_id, NULL::VARCHAR AS object_id, month
    FROM summary
    WHERE mrr_end <> mrr_start + new_mrr + expansion_mrr + reactivation_mrr - contraction_mrr - churned_mrr
),

-- how many lines of each invoice were landed
landed_line_counts AS (
    SELECT account_id, invoice_id, count(*) AS lines FROM invoice_lines GROUP BY ALL
),

-- invoices whose lines were not all landed: MRR from them is incomplete
incomplete_invoices AS (
    SELECT
        'invoice_lines_incomplete', 'error',
        'invoice has ' || coalesce(landed.lines, 0) || ' landed lines, expected '
            || coalesce(invoices.line_count::VARCHAR, '?')
            || CASE WHEN NOT coalesce(invoices.lines_complete, true) THEN ' (not every page was fetched)' ELSE '' END,
        invoices.account_id, invoices.customer_id, invoices.subscription_id, invoices.id,
        NULL, NULL::DATE
    FROM invoices
    LEFT JOIN landed_line_counts AS landed
        ON landed.account_id = invoices.account_id AND landed.invoice_id = invoices.id
    WHERE NOT coalesce(invoices.lines_complete, true)
        OR coalesce(landed.lines, 0) <> coalesce(invoices.line_count, coalesce(landed.lines, 0))
),

-- an invoice status nrr-sync does not know: its lines are not counted
unknown_invoice_statuses AS (
    SELECT
        'unknown_invoice_status', 'warning',
        'invoice status ' || coalesce('''' || invoices.status || '''', 'NULL')
            || ' is not draft, open, paid, uncollectible or void; its lines are not counted',
        invoices.account_id, invoices.customer_id, invoices.subscription_id, invoices.id,
        NULL, NULL::DATE
    FROM invoices
    WHERE invoices.status IS NULL
        OR invoices.status NOT IN ('draft', 'open', 'paid', 'uncollectible', 'void')
),

-- lines of live invoices that may be subscription lines but cannot be used (the predicates
-- are R000's, the ones report.counted_lines uses); one pass over the lines, the checks below
-- tell them apart
suspect_lines AS (
    SELECT
        invoice_lines.account_id,
        invoices.customer_id,
        coalesce(invoice_lines.subscription_id, invoices.subscription_id) AS subscription_id,
        invoice_lines.subscription_id AS line_subscription_id,
        invoice_lines.invoice_id,
        invoice_lines.id AS line_id,
        invoices.status AS invoice_status,
        invoice_lines.parent_type,
        invoice_lines.proration,
        invoice_lines.amount,
        invoice_lines.period_start,
        invoice_lines.period_end,
        invoice_lines.price_id,
        prices.id AS landed_price_id,
        prices.type AS price_type,
        prices.recurring_interval,
        prices.recurring_interval_count,
        prices.recurring_usage_type
    FROM invoice_lines
    JOIN invoices
        ON invoices.account_id = invoice_lines.account_id AND invoices.id = invoice_lines.invoice_id
    LEFT JOIN prices
        ON prices.account_id = invoice_lines.account_id AND prices.id = invoice_lines.price_id
    WHERE report.is_live_invoice(invoices.status)
        AND (invoices.subscription_id IS NOT NULL OR invoice_lines.subscription_id IS NOT NULL)
        AND (
            invoice_lines.parent_type IS NULL
            OR invoice_lines.parent_type NOT IN ('subscription_item_details', 'invoice_item_details')
            OR invoice_lines.amount IS NULL
            OR invoice_lines.period_start IS NULL
            OR invoice_lines.period_end IS NULL
            OR prices.id IS NULL
            OR NOT coalesce(report.is_usable_price(prices.type, prices.recurring_interval,
                prices.recurring_interval_count, prices.recurring_usage_type), false)
        )
),

-- lines that cannot be read as subscription lines: an unknown parent, no amount or no
-- service period. They are not counted.
unreadable_lines AS (
    SELECT
        'unreadable_line', 'warning',
        'line of a ' || invoice_status || ' subscription invoice has '
            || CASE
                WHEN parent_type IS NULL THEN 'no parent'
                WHEN parent_type NOT IN ('subscription_item_details', 'invoice_item_details')
                    THEN 'parent type ' || parent_type
                WHEN amount IS NULL THEN 'no amount'
                ELSE 'no service period'
            END || '; it is not counted',
        account_id, customer_id, subscription_id, invoice_id, line_id, NULL::DATE
    FROM suspect_lines
    WHERE parent_type IS NULL
        OR parent_type NOT IN ('subscription_item_details', 'invoice_item_details')
        OR (
            (parent_type = 'subscription_item_details' OR proration)
            AND (amount IS NULL OR period_start IS NULL OR period_end IS NULL)
        )
),

-- subscription lines of live invoices billed to no customer (Stripe's customer is null, as
-- when an invoice bills a customer_account, which nrr-sync does not read): report.counted_lines
-- leaves them out, as there is no customer to count them for; one row per invoice, with its
-- subscription's customer where that has one (whose MRR it would have been)
customerless_invoices AS (
    SELECT
        'invoice_without_customer', 'warning',
        count(*) || ' subscription line(s) of a ' || any_value(invoices.status)
            || ' invoice billed to no customer (its customer is null, as when Stripe bills a '
            || 'customer_account): not counted',
        invoices.account_id, any_value(subscriptions.customer_id),
        any_value(coalesce(invoice_lines.subscription_id, invoices.subscription_id)),
        invoices.id, NULL, NULL::DATE
    FROM invoices
    JOIN invoice_lines
        ON invoice_lines.account_id = invoices.account_id
        AND invoice_lines.invoice_id = invoices.id
    LEFT JOIN subscriptions
        ON subscriptions.account_id = invoices.account_id
        AND subscriptions.id = coalesce(invoice_lines.subscription_id, invoices.subscription_id)
    WHERE invoices.customer_id IS NULL
        AND report.is_live_invoice(invoices.status)
        AND report.is_subscription_line(invoice_lines.parent_type, invoice_lines.proration,
            invoice_lines.subscription_id)
    GROUP BY invoices.account_id, invoices.id
),

-- subscription lines whose price was never landed cannot be valued and are left out
unknown_prices AS (
    SELECT
        'unknown_price', 'warning',
        'line of ' || invoice_status || ' invoice references price ' || coalesce(price_id, 'NULL')
            || ', which is not in stripe.prices; the line is not counted',
        account_id, customer_id, subscription_id, invoice_id, line_id, NULL::DATE
    FROM suspect_lines
    WHERE landed_price_id IS NULL
        AND coalesce(report.is_subscription_line(parent_type, proration, line_subscription_id), false)
),

-- subscription lines whose price has no usable recurrence (no interval, an unknown
-- interval or usage type, or not recurring at all): they cannot be valued
unusable_prices AS (
    SELECT
        'unusable_price', 'warning',
        'price ' || price_id || ' is ' || coalesce(price_type, 'of no type') || ' with interval '
            || coalesce(recurring_interval, 'NULL') || ' x '
            || coalesce(recurring_interval_count::VARCHAR, 'NULL') || ' and usage type '
            || coalesce(recurring_usage_type, 'NULL') || '; the line is not counted',
        account_id, customer_id, subscription_id, invoice_id, line_id, NULL::DATE
    FROM suspect_lines
    WHERE landed_price_id IS NOT NULL
        AND coalesce(report.is_subscription_line(parent_type, proration, line_subscription_id), false)
        AND NOT coalesce(report.is_usable_price(price_type, recurring_interval,
            recurring_interval_count, recurring_usage_type), false)
),

-- an active subscription should have a counted line covering now; without one its
-- revenue is missing (an invoice not landed yet, a lookback too short, a metered-only plan)
uncovered_subscriptions AS (
    SELECT
        'active_subscription_without_line', 'warning',
        'subscription is ' || subscriptions.status || ' but no counted invoice line covers '
            || strftime(timezone('UTC', settings.as_of), '%Y-%m-%d %H:%M:%S UTC'),
        subscriptions.account_id, subscriptions.customer_id, subscriptions.id, NULL, NULL,
        settings.as_of_month
    FROM subscriptions
    CROSS JOIN settings
    WHERE subscriptions.status IN ('active', 'past_due')
        AND subscriptions.pause_collection_behavior IS NULL
        AND coalesce(subscriptions.created, settings.as_of) < settings.as_of
        AND EXISTS (
            SELECT 1
            FROM subscription_items
            JOIN prices
                ON prices.account_id = subscription_items.account_id
                AND prices.id = subscription_items.price_id
            WHERE subscription_items.account_id = subscriptions.account_id
                AND subscription_items.subscription_id = subscriptions.id
                AND report.counts_usage(prices.recurring_usage_type, settings.include_metered)
        )
        AND NOT EXISTS (
            SELECT 1
            FROM mrr_lines
            WHERE mrr_lines.account_id = subscriptions.account_id
                AND mrr_lines.subscription_id = subscriptions.id
                AND mrr_lines.period_start <= settings.as_of
                AND mrr_lines.period_end > settings.as_of
        )
),

-- collection paused: Stripe drafts or voids the invoices, so the subscription has MRR 0
paused_subscriptions AS (
    SELECT
        'paused_collection', 'info',
        'subscription is ' || subscriptions.status || ' with collection paused ('
            || subscriptions.pause_collection_behavior || '); its MRR is 0 while paused',
        subscriptions.account_id, subscriptions.customer_id, subscriptions.id, NULL, NULL,
        settings.as_of_month
    FROM subscriptions
    CROSS JOIN settings
    WHERE subscriptions.status IN ('active', 'past_due')
        AND subscriptions.pause_collection_behavior IS NOT NULL
),

-- prorations whose amount-off coupon is included in their amount (an entry of 0 naming it)
-- (the entries and the rule report.mrr_lines values prorations with, R000)
amount_off_included AS (
    SELECT DISTINCT account_id, line_id
    FROM report.proration_discount_entries()
    WHERE report.is_included_amount_off(amount, amount_off)
),

-- prorations valued from their own period because the price's full amount is unknown. Why,
-- named: a warning when the price carries something nrr-sync does not know (a billing
-- scheme, a tiers mode, no amount in the line's currency), else a note (no quantity, no
-- amount on the price: expected for custom amounts)
ratio_valued_prorations AS (
    SELECT
        'proration_valued_by_period_ratio',
        CASE WHEN reason LIKE 'price%' OR reason LIKE 'an amount-off%' THEN 'warning' ELSE 'info' END,
        'proration line valued from its period length because ' || reason
            || '; may be off by a few cents',
        account_id, customer_id, subscription_id, invoice_id, line_id, NULL::DATE
    FROM (
        SELECT
            mrr_lines.*,
            CASE
                WHEN amount_off_included.line_id IS NOT NULL
                    THEN 'an amount-off coupon is included in its amount (Stripe shows the '
                        || 'discount as 0), so the full price cannot be discounted exactly'
                WHEN coalesce(prices.billing_scheme, 'per_unit') NOT IN ('per_unit', 'tiered')
                    THEN 'price ' || prices.id || ' has billing_scheme ''' || prices.billing_scheme
                        || ''', which nrr-sync does not know'
                WHEN prices.billing_scheme = 'tiered'
                    AND prices.tiers_mode IS DISTINCT FROM 'volume'
                    AND prices.tiers_mode IS DISTINCT FROM 'graduated'
                    THEN 'price ' || prices.id || ' has tiers_mode '
                        || coalesce('''' || prices.tiers_mode || '''', 'NULL')
                        || ', which nrr-sync does not know'
                WHEN mrr_lines.currency <> lower(prices.currency)
                    AND (prices.currency_options -> mrr_lines.currency) IS NULL
                    THEN 'price ' || prices.id || ' has no amount in ' || mrr_lines.currency
                        || ' (no currency_options entry; its own currency is '
                        || lower(prices.currency) || ')'
                WHEN NOT coalesce(mrr_lines.quantity >= 0, false) THEN 'the line has no quantity'
                ELSE 'the price has no amount at this quantity'
            END AS reason
        FROM mrr_lines
        JOIN prices ON prices.account_id = mrr_lines.account_id AND prices.id = mrr_lines.price_id
        LEFT JOIN amount_off_included
            ON amount_off_included.account_id = mrr_lines.account_id
            AND amount_off_included.line_id = mrr_lines.line_id
        WHERE mrr_lines.valuation = 'period_ratio' AND mrr_lines.amount <> 0
    )
),

-- counted lines in a currency whose decimals nrr-sync does not know (report.currency_exponent):
-- valued as two-decimal, Stripe's default; one row per customer and currency
unknown_currency_exponents AS (
    SELECT
        'unknown_currency_exponent', 'warning',
        count(*) || ' counted line(s) in ' || currency || ', a currency whose number of '
            || 'decimals nrr-sync does not know: valued as two-decimal (Stripe''s default); '
            || 'if it has none this MRR is 100x too low, if three 10x too high',
        account_id, customer_id, any_value(subscription_id), max(invoice_id), max(line_id),
        NULL::DATE
    FROM mrr_lines
    WHERE report.currency_exponent(currency) IS NULL
    GROUP BY account_id, customer_id, currency
),

-- counted lines whose taxes carry a tax_behavior that is neither inclusive (subtracted) nor
-- exclusive (not in the amount): such a tax is left in the line's value
counted_line_taxes AS (
    SELECT
        mrr_lines.account_id, mrr_lines.customer_id, mrr_lines.subscription_id,
        mrr_lines.invoice_id, mrr_lines.line_id,
        -- one row per tax: unnest in the select list, never a lateral json_each (R000,
        -- proration_discount_entries)
        unnest(json_extract(lines_with_other_taxes.raw, '$.taxes[*]')) AS tax
    FROM mrr_lines
    JOIN lines_with_other_taxes
        ON lines_with_other_taxes.account_id = mrr_lines.account_id
        AND lines_with_other_taxes.id = mrr_lines.line_id
),

unknown_tax_behaviors AS (
    SELECT
        'unknown_tax_behavior', 'warning',
        'tax of ' || coalesce(tax ->> 'amount', '?') || ' has tax_behavior '
            || coalesce('''' || (tax ->> 'tax_behavior') || '''', 'NULL')
            || ', neither inclusive nor exclusive: it is not subtracted, so if the line''s '
            || 'amount includes it, it is counted as revenue',
        account_id, customer_id, subscription_id, invoice_id, line_id, NULL::DATE
    FROM counted_line_taxes
    WHERE coalesce(tax ->> 'tax_behavior', '') NOT IN ('inclusive', 'exclusive')
        AND coalesce((tax ->> 'amount')::BIGINT, 0) <> 0
),

-- a line's discount_amounts entry naming a discount that is not among its invoice's landed
-- discounts (e.g. a discount on one subscription item): its amount is still subtracted, but
-- a proration's percent-off coupon cannot be applied to its full price
counted_line_discounts AS (
    SELECT
        mrr_lines.account_id, mrr_lines.customer_id, mrr_lines.subscription_id,
        mrr_lines.invoice_id, mrr_lines.line_id,
        mrr_lines.proration AND mrr_lines.valuation <> 'credited_line'
            AND settings.subtract_discounts AS valued_by_coupon,
        -- one row per entry (entries of 0 on other lines never matter, see below)
        unnest(json_extract(lines_with_discount_entries.discount_amounts, '$[*]')) AS entry
    FROM mrr_lines
    CROSS JOIN settings
    JOIN lines_with_discount_entries
        ON lines_with_discount_entries.account_id = mrr_lines.account_id
        AND lines_with_discount_entries.id = mrr_lines.line_id
),

unlanded_discounts AS (
    SELECT
        'unknown_discount',
        CASE WHEN valued_by_coupon THEN 'warning' ELSE 'info' END,
        'discount ' || coalesce(entry ->> 'discount', 'NULL')
            || CASE WHEN coalesce((entry ->> 'amount')::BIGINT, 0) = 0
                THEN ' is included in the line''s amount (shown as 0)'
                ELSE ' took ' || (entry ->> 'amount') || ' off the line'
            END || ' but is not among its invoice''s landed discounts; '
            || CASE
                WHEN NOT valued_by_coupon
                    THEN 'its value does not depend on the discount''s coupon (not a proration, '
                        || 'or a credit valued from the line it credits)'
                WHEN coalesce((entry ->> 'amount')::BIGINT, 0) = 0
                    THEN 'the proration is valued at its price without that discount'
                ELSE 'the proration is valued through Stripe''s rounded amounts, not its coupon '
                    || '(may be off by a cent)'
            END,
        account_id, customer_id, subscription_id, invoice_id, line_id, NULL::DATE
    FROM counted_line_discounts
    -- an entry of 0 matters only where the coupon would value the line (a proration
    -- showing its discounts included in its amount)
    WHERE (coalesce((entry ->> 'amount')::BIGINT, 0) <> 0 OR valued_by_coupon)
        AND NOT EXISTS (
            SELECT 1
            FROM invoice_discounts
            WHERE invoice_discounts.account_id = counted_line_discounts.account_id
                AND invoice_discounts.invoice_id = counted_line_discounts.invoice_id
                AND invoice_discounts.discount_id = counted_line_discounts.entry ->> 'discount'
        )
),

-- credits larger than the charges at a snapshot: MRR is floored at 0 (customers who had
-- MRR > 0 at some month end)
negative_mrr AS (
    SELECT
        'negative_mrr_floored', 'info',
        'lines sum to ' || mrr_unrounded::DECIMAL(18, 2) || ' at the snapshot; MRR is floored at 0',
        account_id, customer_id, NULL, NULL, NULL, month
    FROM report.customer_mrr_monthly
    WHERE mrr_unrounded < 0
),

-- what the issued credit notes of each invoice take back
credited_amounts AS (
    SELECT account_id, invoice_id, sum(amount) AS amount, count(*) AS notes,
        max(id) AS last_note_id
    FROM credit_notes
    WHERE status = 'issued'
    GROUP BY ALL
),

-- cash and MRR diverge: a subscription invoice whose issued credit notes take back more than
-- half of its total still counts in full (credit notes are cash, not contract changes)
credited_invoices AS (
    SELECT
        'invoice_mostly_credited', 'info',
        'credit notes take back ' || credited.amount || ' of the invoice total ' || invoices.total
            || ' ' || coalesce(invoices.currency, '') || ' (' || credited.notes
            || ' credit note(s)); MRR still counts the invoice''s lines in full',
        invoices.account_id, invoices.customer_id, invoices.subscription_id, invoices.id,
        credited.last_note_id, NULL::DATE
    FROM invoices
    JOIN credited_amounts AS credited
        ON credited.account_id = invoices.account_id AND credited.invoice_id = invoices.id
    WHERE invoices.subscription_id IS NOT NULL
        AND invoices.total > 0
        AND 2 * credited.amount > invoices.total
),

-- metered usage billed on paid invoices is left out of MRR unless include_metered is set:
-- one row per subscription, so a user sees which revenue the default leaves out
excluded_metered AS (
    SELECT
        'metered_usage_excluded', 'info',
        count(*) || ' metered usage line(s) of ' || string_agg(DISTINCT prices.id, ', ' ORDER BY prices.id)
            || ' (' || sum(invoice_lines.amount) || ' ' || any_value(coalesce(invoice_lines.currency, ''))
            || ' in all) are not MRR; set reporting.include_metered to count usage',
        invoices.account_id, invoices.customer_id, invoices.subscription_id, NULL, NULL, NULL::DATE
    FROM invoice_lines
    JOIN invoices
        ON invoices.account_id = invoice_lines.account_id AND invoices.id = invoice_lines.invoice_id
    JOIN prices
        ON prices.account_id = invoice_lines.account_id AND prices.id = invoice_lines.price_id
    CROSS JOIN settings
    WHERE NOT settings.include_metered
        AND prices.recurring_usage_type = 'metered'
        AND invoices.status = 'paid'
        AND invoice_lines.amount <> 0
        AND invoices.subscription_id IS NOT NULL
    GROUP BY invoices.account_id, invoices.customer_id, invoices.subscription_id
),

-- deleted customers keep their paid history: that revenue was real
deleted_customers AS (
    SELECT
        'deleted_customer', 'info',
        'customer was deleted in Stripe; their invoiced history still counts',
        customers.account_id, customers.id, NULL, NULL, NULL, NULL::DATE
    FROM customers
    WHERE customers.deleted
        AND EXISTS (
            SELECT 1 FROM mrr_lines
            WHERE mrr_lines.account_id = customers.account_id AND mrr_lines.customer_id = customers.id
        )
),

-- the rows of the table, as the model defines them
final AS (
    SELECT * FROM identity_violations
    UNION ALL SELECT * FROM incomplete_invoices
    UNION ALL SELECT * FROM unknown_prices
    UNION ALL SELECT * FROM unknown_invoice_statuses
    UNION ALL SELECT * FROM unreadable_lines
    UNION ALL SELECT * FROM customerless_invoices
    UNION ALL SELECT * FROM unusable_prices
    UNION ALL SELECT * FROM uncovered_subscriptions
    UNION ALL SELECT * FROM paused_subscriptions
    UNION ALL SELECT * FROM ratio_valued_prorations
    UNION ALL SELECT * FROM unknown_currency_exponents
    UNION ALL SELECT * FROM unknown_tax_behaviors
    UNION ALL SELECT * FROM unlanded_discounts
    UNION ALL SELECT * FROM negative_mrr
    UNION ALL SELECT * FROM credited_invoices
    UNION ALL SELECT * FROM excluded_metered
    UNION ALL SELECT * FROM deleted_customers
)

SELECT * FROM final;
