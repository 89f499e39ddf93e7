-- What a build was built with, readable from SQL: the `reporting` config, the report's
-- first month and "as of" instant (meta.build_settings, one row), and the fixed exchange
-- rates (meta.fx_rates: reporting-currency units per unit of each currency). Every
-- build writes both anew before the report models run.
CREATE TABLE IF NOT EXISTS meta.build_settings (
    reporting_currency     VARCHAR NOT NULL,
    timezone               VARCHAR NOT NULL,
    include_open_invoices  BOOLEAN NOT NULL,
    include_metered        BOOLEAN NOT NULL,
    subtract_discounts     BOOLEAN NOT NULL,
    churn_recognition      VARCHAR NOT NULL,
    segments               VARCHAR[] NOT NULL,
    since_month            DATE,          -- NULL: the first month with a counted line
    as_of                  TIMESTAMPTZ,   -- NULL: max(invoice created, now())
    built_at               TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS meta.fx_rates (
    currency  VARCHAR PRIMARY KEY,
    rate      DECIMAL(18, 8) NOT NULL
);
