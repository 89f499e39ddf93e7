-- The taxes of a line whose tax_behavior is neither inclusive nor exclusive, summed like
-- inclusive_tax_amount and exclusive_tax_amount. report.data_quality names such taxes; with
-- this column it reads the raw JSON of only the lines that have them, not of every line
-- (most of its time at a million lines).
ALTER TABLE stripe.invoice_lines ADD COLUMN IF NOT EXISTS other_tax_amount BIGINT;

-- Lines landed before this column: the same sum as the loader's (landing.invoice_line_row),
-- once, from their raw JSON (about 3 s a million lines).
UPDATE stripe.invoice_lines
SET other_tax_amount = coalesce(list_sum(list_transform(
    list_filter(json_extract(raw, '$.taxes[*]'),
        lambda tax: coalesce(tax ->> 'tax_behavior', '') NOT IN ('inclusive', 'exclusive')),
    lambda tax: (tax ->> 'amount')::BIGINT)), 0)
WHERE other_tax_amount IS NULL;
