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
        seq -> BigInt,
    }
}

diesel::table! {
    hub_chat_room (room) {
        room -> Varchar,
        last_seq -> BigInt,
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

diesel::table! {
    hub_metric_sample (user_id, name, minute) {
        user_id -> Integer,
        name -> Varchar,
        minute -> Timestamp,
        value -> Double,
    }
}

diesel::table! {
    hub_dns_zone (id) {
        id -> BigInt,
        name -> Varchar,
        owner_id -> Integer,
        serial -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    hub_dns_record (id) {
        id -> BigInt,
        zone_id -> BigInt,
        name -> Varchar,
        #[sql_name = "type"]
        kind -> Varchar,
        content -> Text,
        ttl -> Integer,
        priority -> Nullable<Integer>,
        weight -> Nullable<Integer>,
        port -> Nullable<Integer>,
        comment -> Nullable<Text>,
        version -> BigInt,
    }
}

diesel::table! {
    hub_dns_change (id) {
        id -> BigInt,
        zone_id -> BigInt,
        record_id -> Nullable<BigInt>,
        user_id -> Integer,
        username -> Varchar,
        at -> Timestamp,
        serial -> BigInt,
        action -> Varchar,
        old -> Nullable<Text>,
        new -> Nullable<Text>,
    }
}

diesel::table! {
    hub_dns_deleted_zone (name) {
        name -> Varchar,
        serial -> BigInt,
    }
}

diesel::table! {
    hub_dns_catalog (id) {
        id -> Integer,
        serial -> BigInt,
    }
}

diesel::joinable!(hub_dns_zone -> auth_user (owner_id));
diesel::joinable!(hub_dns_record -> hub_dns_zone (zone_id));
diesel::joinable!(hub_dns_change -> hub_dns_zone (zone_id));
diesel::allow_tables_to_appear_in_same_query!(
    auth_user,
    hub_dns_zone,
    hub_dns_record,
    hub_dns_change
);
