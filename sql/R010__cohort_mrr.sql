-- report.cohort_mrr: revenue retention of each starting cohort, the heatmap of the HTML
-- report, one row per cohort x month from the cohort's first month through the last
-- reported month.
--
-- A customer's cohort is their first reported month with MRR > 0, so every customer
-- already paying when the report starts (`since`) is in the first cohort. Customers stay
-- in their cohort for good: churned ones count with MRR 0, returning ones at their MRR.
--   mrr_retention  = mrr / cohort_mrr          (MRR now over the cohort's first-month MRR)
--   logo_retention = customers / cohort_customers
-- Unlike report.retention (everyone paying at m-k, measured at m), this follows one fixed
-- group of new customers: the view ChartMogul calls cohort "Net MRR Retention".

CREATE OR REPLACE TABLE report.cohort_mrr AS
WITH
history AS (
    SELECT account_id, customer_id, month, mrr, month_complete
    FROM report.customer_mrr_monthly
),

first_paid AS (
    SELECT account_id, customer_id, min(month) AS cohort
    FROM history
    WHERE mrr > 0
    GROUP BY ALL
),

-- rows before a customer's first paying month (zero months after a lookback-only
-- history) belong to no cohort yet
cohort_months AS (
    SELECT
        first_paid.cohort,
        history.month,
        datediff('month', first_paid.cohort, history.month)::INTEGER AS age,
        history.month_complete,
        count(*) FILTER (WHERE history.mrr > 0) AS customers,
        sum(history.mrr) AS mrr
    FROM history
    JOIN first_paid
        ON first_paid.account_id = history.account_id
        AND first_paid.customer_id = history.customer_id
    WHERE history.month >= first_paid.cohort
    GROUP BY ALL
),

cohort_starts AS (
    SELECT cohort, customers AS cohort_customers, mrr AS cohort_mrr
    FROM cohort_months
    WHERE age = 0
),

final AS (
    SELECT
        cohort_months.cohort,
        cohort_months.month,
        cohort_months.age,
        cohort_months.month_complete,
        cohort_starts.cohort_customers::BIGINT AS cohort_customers,
        cohort_starts.cohort_mrr::DECIMAL(18, 2) AS cohort_mrr,
        cohort_months.customers::BIGINT AS customers,
        cohort_months.mrr::DECIMAL(18, 2) AS mrr,
        CASE WHEN cohort_starts.cohort_mrr > 0
            THEN cohort_months.mrr::DOUBLE / cohort_starts.cohort_mrr::DOUBLE END AS mrr_retention,
        CASE WHEN cohort_starts.cohort_customers > 0
            THEN cohort_months.customers::DOUBLE / cohort_starts.cohort_customers::DOUBLE
        END AS logo_retention
    FROM cohort_months
    JOIN cohort_starts ON cohort_starts.cohort = cohort_months.cohort
)

SELECT * FROM final
ORDER BY cohort, month;
