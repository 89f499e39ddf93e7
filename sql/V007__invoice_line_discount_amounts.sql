-- Each line's discount_amounts entries ({"amount", "discount"}) as Stripe sent them, NULL
-- for a line without any. report.mrr_lines and report.data_quality read the entries of
-- the lines that have some from here instead of from each line's whole raw JSON (at a
-- million lines, the largest read of raw left in data_quality).
ALTER TABLE stripe.invoice_lines ADD COLUMN IF NOT EXISTS discount_amounts JSON;

-- Lines landed before this column: the same as the loader's (landing.invoice_line_row),
-- once, from their raw JSON.
UPDATE stripe.invoice_lines
SET discount_amounts = raw -> '$.discount_amounts'
WHERE discount_amounts IS NULL AND json_array_length(raw, '$.discount_amounts') > 0;
