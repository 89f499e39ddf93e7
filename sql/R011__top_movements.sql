-- report.top_movements: the customers behind the movements of the last 12 complete
-- months: for each kind of movement, the 10 largest single movements (one customer in one
-- month, by the size of the change), with the customer's name. The HTML report lists the
-- expansion, contraction and churn ones; report.mrr_movements holds them all.
--
-- The window is fixed to the data (the 12 complete months ending at the last complete
-- month), so the table reads the same whatever months a report shows. A customer may
-- appear twice in one list (two expansions in a year are two movements).

CREATE OR REPLACE TABLE report.top_movements AS
WITH
summary AS (SELECT month, month_complete FROM report.mrr_summary),
movements AS (
    SELECT account_id, customer_id, month, movement, mrr_before, mrr_after, amount
    FROM report.mrr_movements
),
customers AS (SELECT account_id, id AS customer_id, name, email FROM stripe.customers),

-- the last complete month and the eleven before it (fewer in a younger report)
window_bounds AS (
    SELECT
        (max(month) - INTERVAL 11 MONTH)::DATE AS window_start,
        max(month) AS window_end
    FROM summary
    WHERE month_complete
),

in_window AS (
    SELECT movements.*, window_bounds.window_start, window_bounds.window_end
    FROM movements
    JOIN window_bounds
        ON movements.month BETWEEN window_bounds.window_start AND window_bounds.window_end
),

-- largest change first; ties by the later month, then the ids, so reruns agree
ranked AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY movement
            ORDER BY abs(amount) DESC, month DESC, account_id, customer_id
        ) AS rank
    FROM in_window
),

final AS (
    SELECT
        ranked.movement,
        ranked.rank::INTEGER AS rank,
        ranked.account_id,
        ranked.customer_id,
        -- Stripe customers need no name; the email is what a person recognises next
        coalesce(nullif(customers.name, ''), nullif(customers.email, '')) AS customer_name,
        ranked.month,
        ranked.mrr_before,
        ranked.mrr_after,
        ranked.amount,
        ranked.window_start,
        ranked.window_end
    FROM ranked
    LEFT JOIN customers
        ON customers.account_id = ranked.account_id
        AND customers.customer_id = ranked.customer_id
    WHERE ranked.rank <= 10
)

SELECT * FROM final
ORDER BY movement, rank;
