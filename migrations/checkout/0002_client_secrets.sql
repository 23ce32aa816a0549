-- The secret a storefront reads and submits its session with (answered once
-- by `POST /checkout/sessions`), and the payment intent's client secret
-- (from `payments.PaymentIntentCreated`, kept by order because that event may
-- come before `orders.OrderPlaced` names the session), which the session
-- shows its holder so they can confirm the payment with a publishable key.
CREATE TABLE checkout_client_secrets (
    session_id TEXT PRIMARY KEY,
    client_secret TEXT NOT NULL CHECK (length(client_secret) BETWEEN 20 AND 200)
);

CREATE TABLE checkout_payment_secrets (
    order_id TEXT PRIMARY KEY,
    client_secret TEXT NOT NULL CHECK (length(client_secret) BETWEEN 20 AND 200)
);
