-- report.customer_mrr_monthly: customer x month MRR in the reporting currency, from the
-- customer's first month with MRR > 0 (not before `since`) through the last reported
-- month, zero months included. The current month (month_complete = false) is valued at
-- the time of the last sync.

CREATE OR REPLACE TABLE report.customer_mrr_monthly AS
WITH history AS (SELECT * FROM report.customer_mrr_history)

SELECT
    account_id,
    customer_id,
    month,
    mrr,
    month_complete,
    billing_currency,
    top_product_id AS product_id,
    first_mrr_month
FROM history
WHERE reported;
