-- The secret a storefront reads an order back with (Stripe's `client_secret`):
-- answered once by `POST /orders`, asked of every caller but the merchant by
-- `GET /orders/{id}`. Apart from `orders`, whose rows change only with their
-- version checked; a secret never changes. Orders placed before this
-- migration, or through a checkout session (followed there), have none.
CREATE TABLE order_client_secrets (
    order_id TEXT PRIMARY KEY REFERENCES orders (id),
    client_secret TEXT NOT NULL CHECK (length(client_secret) BETWEEN 20 AND 200)
);
