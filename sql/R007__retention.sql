-- report.retention: net / gross revenue retention and logo retention in cohort form
-- (docs/metrics.md), for month m (the window's end) x window k in (1, 3, 12) x segment.
--
-- The cohort of (m, k) is every customer with MRR > 0 at m-k; customers who start after
-- m-k never count. Segments use the customer's attributes at m-k.
--   nrr = mrr_end / mrr_start            (expansion counts; churned-and-back counts at m)
--   grr = sum(least(MRR(m), MRR(m-k))) / mrr_start   (capped per customer, never > 1)
--   logo_retention = customers_retained / customers_start
-- Rows exist for months m with m-k >= `since`: the cohort is measured inside the reported
-- range, where the lookback invoices guarantee complete data.

CREATE OR REPLACE TABLE report.retention AS
WITH
settings AS (SELECT * FROM report.build_info),
months AS (SELECT * FROM report.months),
history AS (SELECT * FROM report.customer_mrr_monthly),
-- every customer with history, landed or not (a missing customer falls in '(none)')
customers AS (
    SELECT known.account_id, known.customer_id, stripe_customers.country, stripe_customers.metadata
    FROM (SELECT DISTINCT account_id, customer_id FROM report.customer_mrr_monthly) AS known
    LEFT JOIN stripe.customers AS stripe_customers
        ON stripe_customers.account_id = known.account_id
        AND stripe_customers.id = known.customer_id
),
products AS (SELECT account_id, id AS product_id, name FROM stripe.products),
windows AS (SELECT unnest([1, 3, 12]) AS window_months),

-- (m, k) pairs to report: both ends inside the report's months
window_months AS (
    SELECT end_month.month, end_month.month_index, end_month.month_complete, windows.window_months
    FROM months AS end_month
    CROSS JOIN windows
    JOIN months AS start_month
        ON start_month.month_index = end_month.month_index - windows.window_months
    WHERE start_month.reported
),

cohort_members AS MATERIALIZED (
    SELECT
        window_months.month,
        window_months.window_months,
        start_history.account_id,
        start_history.customer_id,
        start_history.mrr AS mrr_start,
        coalesce(end_history.mrr, 0) AS mrr_end,
        start_history.billing_currency,
        start_history.product_id,
        start_history.first_mrr_month
    FROM history AS start_history
    JOIN window_months
        ON start_history.month_index = window_months.month_index - window_months.window_months
    LEFT JOIN history AS end_history
        ON end_history.account_id = start_history.account_id
        AND end_history.customer_id = start_history.customer_id
        AND end_history.month_index = window_months.month_index
    WHERE start_history.mrr > 0
),

-- the segments the config names, one row each
metadata_segments AS (
    SELECT unnest(segments) AS segment_type FROM settings
),

-- country and metadata:<key>: Stripe keeps only their current values, so these use today's
customer_segments AS (
    SELECT customers.account_id, customers.customer_id, 'country' AS segment_type,
        coalesce(customers.country, '(none)') AS segment
    FROM customers
    CROSS JOIN settings
    WHERE list_contains(settings.segments, 'country')
    UNION ALL
    SELECT customers.account_id, customers.customer_id, segment_type,
        coalesce(customers.metadata ->> substr(segment_type, 10), '(none)') AS segment
    FROM customers
    CROSS JOIN metadata_segments
    WHERE segment_type LIKE 'metadata:%'
),

-- the cohort summed per combination of the attributes that segment it, so the segments
-- below add up groups, not a row per customer (100,000 customers: 35,000 groups for 2.5
-- million members); sums and counts add up exactly either way
cohort_groups AS MATERIALIZED (
    SELECT
        month,
        window_months,
        account_id,
        billing_currency,
        first_mrr_month,
        product_id,
        count(*) AS customers_start,
        count(*) FILTER (WHERE mrr_end > 0) AS customers_retained,
        sum(mrr_start) AS mrr_start,
        sum(mrr_end) AS mrr_end,
        sum(least(mrr_start, mrr_end)) AS mrr_retained_capped
    FROM cohort_members
    GROUP BY ALL
),

segmented AS (
    SELECT month, window_months, 'all' AS segment_type, 'all' AS segment,
        customers_start, customers_retained, mrr_start, mrr_end, mrr_retained_capped
    FROM cohort_groups
    UNION ALL
    SELECT month, window_months, 'currency', coalesce(billing_currency, '(none)'),
        customers_start, customers_retained, mrr_start, mrr_end, mrr_retained_capped
    FROM cohort_groups
    CROSS JOIN settings
    WHERE list_contains(settings.segments, 'currency')
    UNION ALL
    SELECT month, window_months, 'cohort', strftime(first_mrr_month, '%Y-%m'),
        customers_start, customers_retained, mrr_start, mrr_end, mrr_retained_capped
    FROM cohort_groups
    CROSS JOIN settings
    WHERE list_contains(settings.segments, 'cohort')
    UNION ALL
    SELECT cohort_groups.month, cohort_groups.window_months, 'product',
        coalesce(products.name, cohort_groups.product_id, '(none)'),
        cohort_groups.customers_start, cohort_groups.customers_retained, cohort_groups.mrr_start,
        cohort_groups.mrr_end, cohort_groups.mrr_retained_capped
    FROM cohort_groups
    CROSS JOIN settings
    LEFT JOIN products
        ON products.account_id = cohort_groups.account_id
        AND products.product_id = cohort_groups.product_id
    WHERE list_contains(settings.segments, 'product')
    UNION ALL
    SELECT cohort_members.month, cohort_members.window_months, customer_segments.segment_type,
        customer_segments.segment, 1, (cohort_members.mrr_end > 0)::INTEGER,
        cohort_members.mrr_start, cohort_members.mrr_end,
        least(cohort_members.mrr_start, cohort_members.mrr_end)
    FROM cohort_members
    JOIN customer_segments
        ON customer_segments.account_id = cohort_members.account_id
        AND customer_segments.customer_id = cohort_members.customer_id
),

segment_totals AS (
    SELECT
        month,
        window_months,
        segment_type,
        segment,
        sum(customers_start) AS customers_start,
        sum(customers_retained) AS customers_retained,
        sum(mrr_start) AS mrr_start,
        sum(mrr_end) AS mrr_end,
        sum(mrr_retained_capped) AS mrr_retained_capped
    FROM segmented
    GROUP BY ALL
),

-- segment 'all' gets a row for every reportable (m, k), even with an empty cohort
all_rows AS (
    SELECT month, window_months, 'all' AS segment_type, 'all' AS segment
    FROM window_months
),

rows AS (
    SELECT * FROM all_rows
    UNION
    SELECT month, window_months, segment_type, segment FROM segment_totals
),

-- the rows of the table, as the model defines them
final AS (
    SELECT
        rows.month,
        rows.window_months,
        rows.segment_type,
        rows.segment,
        coalesce(segment_totals.customers_start, 0)::BIGINT AS customers_start,
        coalesce(segment_totals.customers_retained, 0)::BIGINT AS customers_retained,
        coalesce(segment_totals.mrr_start, 0)::DECIMAL(18, 2) AS mrr_start,
        coalesce(segment_totals.mrr_end, 0)::DECIMAL(18, 2) AS mrr_end,
        coalesce(segment_totals.mrr_retained_capped, 0)::DECIMAL(18, 2) AS mrr_retained_capped,
        CASE WHEN segment_totals.mrr_start > 0
            THEN segment_totals.mrr_end::DOUBLE / segment_totals.mrr_start::DOUBLE END AS nrr,
        CASE WHEN segment_totals.mrr_start > 0
            THEN segment_totals.mrr_retained_capped::DOUBLE / segment_totals.mrr_start::DOUBLE END AS grr,
        CASE WHEN segment_totals.customers_start > 0
            THEN segment_totals.customers_retained::DOUBLE / segment_totals.customers_start::DOUBLE END
            AS logo_retention,
        window_months.month_complete
    FROM rows
    JOIN window_months
        ON window_months.month = rows.month
        AND window_months.window_months = rows.window_months
    LEFT JOIN segment_totals
        ON segment_totals.month = rows.month
        AND segment_totals.window_months = rows.window_months
        AND segment_totals.segment_type = rows.segment_type
        AND segment_totals.segment = rows.segment
)

SELECT * FROM final
ORDER BY month, window_months, segment_type, segment;
