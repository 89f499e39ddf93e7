-- report.mrr_movements: one row per customer and month whose MRR changed from the
-- previous month's snapshot (docs/metrics.md). amount = mrr_after - mrr_before.
--
-- new:          0 -> > 0, and the customer never had MRR > 0 at an earlier month end
--               (months before `since` count: a customer already paying is not new)
-- reactivation: 0 -> > 0 otherwise
-- expansion / contraction: both > 0, up / down
-- churn:        > 0 -> 0

CREATE OR REPLACE TABLE report.mrr_movements AS
WITH history AS (SELECT * FROM report.customer_mrr_monthly),

changes AS (
    SELECT *
    FROM history
    WHERE mrr <> mrr_previous
),

-- the rows of the table, as the model defines them
final AS (
    SELECT
        account_id,
        customer_id,
        month,
        CASE
            -- history starts at the first month with MRR > 0, so that month is the only `new`
            WHEN mrr_previous = 0 AND month = first_mrr_month THEN 'new'
            WHEN mrr_previous = 0 THEN 'reactivation'
            WHEN mrr = 0 THEN 'churn'
            WHEN mrr > mrr_previous THEN 'expansion'
            ELSE 'contraction'
        END AS movement,
        mrr_previous AS mrr_before,
        mrr AS mrr_after,
        (mrr - mrr_previous)::DECIMAL(18, 2) AS amount,
        -- the product of the customer's largest MRR; for churn, the one they left
        CASE WHEN mrr = 0 THEN previous_product_id ELSE product_id END AS product_id,
        month_complete
    FROM changes
)

SELECT * FROM final;
