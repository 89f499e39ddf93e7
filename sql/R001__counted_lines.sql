-- report.counted_lines (a view): which invoice lines count as recurring revenue, and until
-- when (docs/metrics.md, "Which invoices count", "Which lines count", "Cancellation").
-- The counting policy only: what each line is worth is report.mrr_lines (R002), which reads
-- this view, so the policy is written once and can be queried on its own.
--
-- A view, not a table: it costs no space in the file and always shows what the last build
-- counted (it reads the same meta.build_settings).
-- Inputs: stripe.* landing tables, meta.build_settings (one row: the `reporting` config).
-- The predicates it uses are macros in R000__macros.sql, shared with report.data_quality.
CREATE OR REPLACE VIEW report.counted_lines AS
WITH
settings AS (SELECT * FROM meta.build_settings),
invoices AS (SELECT * FROM stripe.invoices),
invoice_lines AS (SELECT * FROM stripe.invoice_lines),
prices AS (SELECT * FROM stripe.prices),
subscriptions AS (SELECT * FROM stripe.subscriptions),

-- Subscription lines of live invoices with a service period
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
    WHERE report.is_live_invoice(invoices.status)
        AND report.is_subscription_line(invoice_lines.parent_type, invoice_lines.proration,
            invoice_lines.subscription_id)
        AND invoice_lines.period_end > invoice_lines.period_start
        -- an invoice billed to no customer (Stripe's customer is null, as when it bills a
        -- customer_account) has no one to count for: report.data_quality names it
        AND invoices.customer_id IS NOT NULL
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
counted_invoice_lines AS (
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

-- Only licensed recurring prices are MRR; metered usage only when the config asks for it.
-- Lines whose price was never landed cannot be valued: report.data_quality lists them.
recurring_lines AS (
    SELECT
        counted_invoice_lines.*,
        coalesce(prices.product_id, counted_invoice_lines.line_product_id) AS product_id,
        prices.recurring_interval,
        prices.recurring_interval_count,
        prices.recurring_usage_type,
        -- the subscription stops counting at canceled_at under churn_recognition canceled_at;
        -- period_end keeps it to the end of the paid period
        least(counted_invoice_lines.period_end,
            coalesce(counted_invoice_lines.canceled_at, counted_invoice_lines.period_end))
            AS recognized_end
    FROM counted_invoice_lines
    CROSS JOIN settings
    JOIN prices
        ON prices.account_id = counted_invoice_lines.account_id
        AND prices.id = counted_invoice_lines.price_id
    WHERE report.is_usable_price(prices.type, prices.recurring_interval,
            prices.recurring_interval_count, prices.recurring_usage_type)
        AND report.counts_usage(prices.recurring_usage_type, settings.include_metered)
),

-- the rows of the view: a counted line and the part of its period that is recognized
final AS (
    SELECT * EXCLUDE (canceled_at, auto_advance, billing_reason, line_product_id)
    FROM recurring_lines
    WHERE recognized_end > period_start
)

SELECT * FROM final;
