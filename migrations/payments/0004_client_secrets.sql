-- The secret a storefront confirms and reads a payment intent with (Stripe's
-- `client_secret`): made with the intent, announced to checkout in
-- `PaymentIntentCreated`, asked of every caller but the merchant by
-- `GET /intents/{id}` and `POST /intents/{id}/confirm`. Intents made before
-- this migration have none: only the merchant confirms them.
CREATE TABLE payment_intent_client_secrets (
    intent_id TEXT PRIMARY KEY REFERENCES payment_intents (id),
    client_secret TEXT NOT NULL CHECK (length(client_secret) BETWEEN 20 AND 200)
);
