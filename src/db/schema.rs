//! One schema for both backends. `auth_user` is Django's table, read as Django
//! writes it (on SQLite: 0/1 booleans and text datetimes, which diesel reads).

diesel::table! {
    auth_user (id) {
        id -> Integer,
        password -> Varchar,
        last_login -> Nullable<Timestamp>,
        is_superuser -> Bool,
        username -> Varchar,
        first_name -> Varchar,
        last_name -> Varchar,
        email -> Varchar,
        is_staff -> Bool,
        is_active -> Bool,
        date_joined -> Timestamp,
    }
}

diesel::table! {
    hub_chat_message (id) {
        id -> BigInt,
        room -> Varchar,
        user_id -> Nullable<Integer>,
        username -> Varchar,
        is_staff -> Bool,
        body -> Text,
        sent_at -> Timestamp,
    }
}

diesel::table! {
    hub_metric (user_id, name) {
        user_id -> Integer,
        name -> Varchar,
        value -> Double,
        updated_at -> Timestamp,
        version -> BigInt,
    }
}
