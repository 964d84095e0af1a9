-- The HR database's aliases of Example Labs (pgsql-virtual.cf)
CREATE TABLE virtual_aliases (
    address text NOT NULL,
    goto text NOT NULL,
    active boolean NOT NULL DEFAULT true
);
INSERT INTO virtual_aliases (address, goto, active) VALUES
    ('d.lee@example-labs.com', 'dlee@example.org', true),
    ('sales@example-labs.com', 'cwong@example.org', true),
    ('sales@example-labs.com', 'orders@example-shop.net', true),
    ('sales@example-labs.com', 'partner@partner.example.net', true),
    ('ceo@example-labs.com', 'dlee@example.org, assistant@example-labs.com', true),
    ('assistant@example-labs.com', 'bjones', true),
    ('former@example-labs.com', 'asmith@example.org', false);
GRANT SELECT ON virtual_aliases TO postfix;
