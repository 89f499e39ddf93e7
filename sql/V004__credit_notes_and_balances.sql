-- Cash events (docs/metrics.md, "Cash events"): credit notes, and the customer balance as
-- invoices and customers carry it. None of this changes MRR; it is landed so a user can see
-- where cash and MRR diverge (report.data_quality lists subscription invoices credited by
-- more than half).

CREATE TABLE IF NOT EXISTS stripe.credit_notes (
    account_id            VARCHAR NOT NULL,
    id                    VARCHAR NOT NULL,
    invoice_id            VARCHAR,
    customer_id           VARCHAR,
    number                VARCHAR,
    status                VARCHAR,   -- issued | void
    type                  VARCHAR,   -- pre_payment | post_payment | mixed
    reason                VARCHAR,   -- duplicate | fraudulent | order_change | product_unsatisfactory
    currency              VARCHAR,
    amount                BIGINT,    -- total credited, tax included
    subtotal              BIGINT,
    discount_amount       BIGINT,
    pre_payment_amount    BIGINT,    -- lowered the invoice's amount_due
    post_payment_amount   BIGINT,    -- credited after payment: refund, balance or out of band
    refund_amount         BIGINT,    -- sum of refunds[].amount_refunded
    out_of_band_amount    BIGINT,
    customer_balance_transaction_id VARCHAR,  -- set when credited to the customer balance
    created               TIMESTAMPTZ,
    effective_at          TIMESTAMPTZ,
    voided_at             TIMESTAMPTZ,
    metadata              JSON,
    raw                   JSON,
    synced_at             TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, id)
);

-- What the customer balance and credit notes did to an invoice's amounts.
ALTER TABLE stripe.invoices ADD COLUMN starting_balance BIGINT;
ALTER TABLE stripe.invoices ADD COLUMN ending_balance BIGINT;
ALTER TABLE stripe.invoices ADD COLUMN amount_remaining BIGINT;
ALTER TABLE stripe.invoices ADD COLUMN pre_payment_credit_notes_amount BIGINT;
ALTER TABLE stripe.invoices ADD COLUMN post_payment_credit_notes_amount BIGINT;

-- The customer's balance (< 0: a credit the next invoices use).
ALTER TABLE stripe.customers ADD COLUMN balance BIGINT;
