-- The taxes of a line whose tax_behavior is neither inclusive nor exclusive, summed like
-- inclusive_tax_amount and exclusive_tax_amount. report.data_quality names such taxes; with
-- this column it reads the raw JSON of only the lines that have them, not of every line
-- (most of its time at a million lines). Lines landed before it are NULL: those are read
-- from raw as before, until the next backfill.
ALTER TABLE stripe.invoice_lines ADD COLUMN IF NOT EXISTS other_tax_amount BIGINT;
