-- The ids of the lines a credit proration names as what it credits
-- (parent.<type>.proration_details.credited_items.invoice_line_items, flexible billing
-- mode) as Stripe sent them, a JSON list; NULL for a line that names none.
-- report.mrr_lines reads them from here: since V008 compresses raw with zstd, picking the
-- raw JSON of the 9 % of lines that are prorations out of 1.4 million decompresses whole
-- segments (0.32 s against 0.09 s before V008, docs/benchmarks.md, section 6).
ALTER TABLE stripe.invoice_lines ADD COLUMN IF NOT EXISTS credited_line_ids JSON;

-- Lines landed before this column: the same as the loader's (landing.invoice_line_row),
-- once, from their raw JSON.
UPDATE stripe.invoice_lines
SET credited_line_ids = raw -> 'parent' -> parent_type -> 'proration_details'
    -> 'credited_items' -> 'invoice_line_items'
WHERE proration
    AND credited_line_ids IS NULL
    AND json_array_length(raw -> 'parent' -> parent_type -> 'proration_details'
        -> 'credited_items' -> 'invoice_line_items') > 0;
