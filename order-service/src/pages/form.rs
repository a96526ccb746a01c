//! The new-order form: what a person fills in, read into the API's own
//! request type and validated by the API's own rules, so a field error on
//! the page is word for word the one `POST /orders` answers.
//!
//! Every input is named after the field's path in the JSON request
//! (`customer.name`, `billing_address.zip`, `lines[2].quantity`), so an
//! error names its input; all but one: a person types a price in the
//! currency's own units (`19.99` euros, `1999` yen), so its input is
//! `lines[2].unit_price`, read into the API's `unit_price_cents` (minor
//! units) by [`platform::money::parse`], and the API's errors on
//! `unit_price_cents` are shown beside it in the same units. Lines are
//! added and removed by submit buttons that re-render the form with one
//! line more or less: no JavaScript.
//! The form carries its Idempotency-Key in a hidden field, chosen when the
//! form is first opened (and kept in its address, `/new?key=`), so sending
//! it twice, by a double click, a reload or the back button, places one
//! order.

use platform::money::{self, AmountError};
use platform_web::FieldError;
use platform_web::web::PageError;
use platform_web::web::form::Form;
use serde_json::Number;

use crate::api::headers::IdempotencyKey;
use crate::api::request::{AddressRequest, CustomerRequest, LineRequest, PlaceOrderRequest};
use crate::domain::money::MAX_UNIT_PRICE_CENTS;
use crate::domain::{MAX_LINES, NewOrder};

/// The hidden field carrying the form's Idempotency-Key.
pub const KEY_FIELD: &str = "idempotency_key";
/// The checkbox that ships to the billing address.
pub const SAME_AS_BILLING: &str = "shipping_same_as_billing";
/// The name of the form's submit buttons.
pub const ACTION: &str = "action";

const ADDRESS_FIELDS: [&str; 4] = ["street", "zip", "city", "country"];
const LINE_FIELDS: [&str; 4] = ["sku", "name", "quantity", UNIT_PRICE];
/// A line's unit price as typed, in the currency's units (the API's field
/// is `unit_price_cents`, in minor units).
pub const UNIT_PRICE: &str = "unit_price";
/// The API's field that [`UNIT_PRICE`] becomes.
const UNIT_PRICE_CENTS: &str = "unit_price_cents";

/// An address as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressInput {
    /// Street and number.
    pub street: String,
    /// Postal code.
    pub zip: String,
    /// City.
    pub city: String,
    /// Country code.
    pub country: String,
}

impl AddressInput {
    fn field(&self, name: &str) -> &str {
        match name {
            "street" => &self.street,
            "zip" => &self.zip,
            "city" => &self.city,
            _ => &self.country,
        }
    }

    fn read(form: &Form, prefix: &str) -> Self {
        let get = |name: &str| {
            form.get(&format!("{prefix}.{name}"))
                .unwrap_or("")
                .to_owned()
        };
        AddressInput {
            street: get("street"),
            zip: get("zip"),
            city: get("city"),
            country: get("country"),
        }
    }

    fn request(&self) -> AddressRequest {
        AddressRequest {
            street: Some(self.street.clone()),
            zip: Some(self.zip.clone()),
            city: Some(self.city.clone()),
            country: Some(self.country.clone()),
        }
    }
}

/// A line as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineInput {
    /// Stock keeping unit.
    pub sku: String,
    /// Product name.
    pub name: String,
    /// Units, as typed.
    pub quantity: String,
    /// Unit price in the currency's units (`19.99`), as typed.
    pub unit_price: String,
}

impl LineInput {
    fn field(&self, name: &str) -> &str {
        match name {
            "sku" => &self.sku,
            "name" => &self.name,
            "quantity" => &self.quantity,
            _ => &self.unit_price,
        }
    }

    /// The line as the API would have received it, with the unit price in
    /// minor units of `currency`, or why the price cannot be read.
    fn request(&self, currency: &str) -> (LineRequest, Option<AmountError>) {
        let (unit_price_cents, error) = match money::exponent(currency) {
            Some(places) => match money::parse(&self.unit_price, currency, places) {
                Ok(minor) => (minor.map(Number::from), None),
                Err(error) => (Some(Number::from(0)), Some(error)),
            },
            // Without a currency the amount cannot be read; the currency's
            // own error says what to fix, and the order is not placed.
            None => (Some(Number::from(0)), None),
        };
        let request = LineRequest {
            sku: Some(self.sku.clone()),
            name: Some(self.name.clone()),
            quantity: number(&self.quantity),
            unit_price_cents,
        };
        (request, error)
    }
}

/// A typed number as the API would have received it: blank is missing
/// ("is required"); anything that is not a whole number is out of every
/// range, so the API's own range message ("must be a whole number from 1
/// to 10000") names what to type.
fn number(typed: &str) -> Option<Number> {
    let typed = typed.trim();
    if typed.is_empty() {
        return None;
    }
    Some(
        typed
            .parse::<i64>()
            .map(Number::from)
            .unwrap_or_else(|_| Number::from(u64::MAX)),
    )
}

/// What the person asked for by pressing a button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Place the order.
    Place,
    /// Show one more line.
    AddLine,
    /// Drop line `n`.
    RemoveLine(usize),
}

/// The new-order form as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderForm {
    /// The Idempotency-Key the form was opened with.
    pub key: String,
    /// Customer's name.
    pub customer_name: String,
    /// Customer's e-mail.
    pub customer_email: String,
    /// Where the invoice goes.
    pub billing: AddressInput,
    /// Ship to the billing address.
    pub same_as_billing: bool,
    /// Where the parcel goes (ignored with `same_as_billing`).
    pub shipping: AddressInput,
    /// Currency code.
    pub currency: String,
    /// The lines, in order.
    pub lines: Vec<LineInput>,
}

impl OrderForm {
    /// An empty form with one line, opened under `key`.
    pub fn blank(key: IdempotencyKey) -> Self {
        OrderForm {
            key: key.as_str().to_owned(),
            customer_name: String::new(),
            customer_email: String::new(),
            billing: AddressInput::default(),
            same_as_billing: false,
            shipping: AddressInput::default(),
            currency: "EUR".to_owned(),
            lines: vec![LineInput::default()],
        }
    }

    /// Reads a posted form: every field must be one of the form's own (a
    /// line index at most [`MAX_LINES`]), the key valid; the button pressed
    /// says what to do.
    pub fn read(form: &Form) -> Result<(Self, Action), PageError> {
        form.only(is_field)?;
        let key = form
            .get(KEY_FIELD)
            .ok_or_else(|| {
                PageError::bad_request("the form has no idempotency key; open it again from /new")
            })
            .and_then(|raw| {
                IdempotencyKey::parse(raw.as_bytes()).map_err(|_| {
                    PageError::bad_request(
                        "the form's idempotency key is not valid; open it again from /new",
                    )
                })
            })?;
        let action = match form.get(ACTION).unwrap_or("place") {
            "place" => Action::Place,
            "add-line" => Action::AddLine,
            other => other
                .strip_prefix("remove-line-")
                .and_then(|n| n.parse().ok())
                .filter(|n| *n < MAX_LINES)
                .map(Action::RemoveLine)
                .ok_or_else(|| PageError::bad_request("this form has no such button"))?,
        };
        let count = form
            .names()
            .filter_map(line_index)
            .max()
            .map_or(0, |highest| highest + 1);
        let lines = (0..count)
            .map(|i| {
                let get = |name: &str| {
                    form.get(&format!("lines[{i}].{name}"))
                        .unwrap_or("")
                        .to_owned()
                };
                LineInput {
                    sku: get("sku"),
                    name: get("name"),
                    quantity: get("quantity"),
                    unit_price: get(UNIT_PRICE),
                }
            })
            .collect();
        let text = |name: &str| form.get(name).unwrap_or("").to_owned();
        Ok((
            OrderForm {
                key: key.as_str().to_owned(),
                customer_name: text("customer.name"),
                customer_email: text("customer.email"),
                billing: AddressInput::read(form, "billing_address"),
                same_as_billing: form.get(SAME_AS_BILLING).is_some(),
                shipping: AddressInput::read(form, "shipping_address"),
                currency: text("currency"),
                lines,
            },
            action,
        ))
    }

    /// The request `POST /orders` would have received for this form, and
    /// the unit prices that cannot be read (by field).
    pub fn request(&self) -> (PlaceOrderRequest, Vec<FieldError>) {
        let billing = self.billing.request();
        let mut unreadable = Vec::new();
        let lines = self
            .lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let (request, error) = line.request(&self.currency);
                if let Some(error) = error {
                    unreadable.push(FieldError::new(
                        format!("lines[{i}].{UNIT_PRICE}"),
                        error.to_string(),
                    ));
                }
                request
            })
            .collect();
        let request = PlaceOrderRequest {
            customer: Some(CustomerRequest {
                name: Some(self.customer_name.clone()),
                email: Some(self.customer_email.clone()),
            }),
            shipping_address: Some(if self.same_as_billing {
                billing.clone()
            } else {
                self.shipping.request()
            }),
            billing_address: Some(billing),
            currency: Some(self.currency.clone()),
            lines: Some(lines),
        };
        (request, unreadable)
    }

    /// Validates the form with the API's rules: the order, or the field
    /// errors (with "same as billing", the shipping address's errors are
    /// the billing address's, shown once; a unit price's are beside its
    /// input, in the currency's units).
    pub fn validate(&self) -> Result<NewOrder, Vec<FieldError>> {
        let (request, unreadable) = self.request();
        let errors = match (request.validate(), unreadable.is_empty()) {
            (Ok(order), true) => return Ok(order),
            (Ok(_), false) => Vec::new(),
            (Err(errors), _) => errors,
        };
        let mut errors: Vec<FieldError> = errors
            .into_iter()
            .filter(|e| !(self.same_as_billing && e.field.starts_with("shipping_address")))
            .map(|e| self.in_currency_units(e))
            .collect();
        errors.extend(unreadable);
        Err(errors)
    }

    /// An API error on a line's `unit_price_cents`, as the page says it:
    /// beside the `unit_price` input, its range in the currency's units.
    fn in_currency_units(&self, error: FieldError) -> FieldError {
        let Some(line) = error
            .field
            .strip_suffix(UNIT_PRICE_CENTS)
            .and_then(|prefix| prefix.strip_suffix('.'))
        else {
            return error;
        };
        let field = format!("{line}.{UNIT_PRICE}");
        let message = if error.message == "is required" {
            error.message
        } else {
            format!(
                "must be from {} to {}",
                money::format(0, &self.currency),
                money::format(MAX_UNIT_PRICE_CENTS, &self.currency)
            )
        };
        FieldError::new(field, message)
    }

    /// Applies a line button; `false` when there is nothing to do (the
    /// most lines already, the last line).
    pub fn apply(&mut self, action: Action) -> bool {
        match action {
            Action::AddLine if self.lines.len() < MAX_LINES => {
                self.lines.push(LineInput::default());
                true
            }
            Action::RemoveLine(n) if n < self.lines.len() && self.lines.len() > 1 => {
                self.lines.remove(n);
                true
            }
            _ => false,
        }
    }

    /// What is typed in the input named `name` (an API field path).
    pub fn value(&self, name: &str) -> &str {
        if let Some((prefix, field)) = name.split_once('.') {
            match prefix {
                "customer" if field == "name" => return &self.customer_name,
                "customer" if field == "email" => return &self.customer_email,
                "billing_address" => return self.billing.field(field),
                "shipping_address" => return self.shipping.field(field),
                _ => {}
            }
            if let Some(line) = line_index(name).and_then(|i| self.lines.get(i)) {
                return line.field(field);
            }
        }
        match name {
            "currency" => &self.currency,
            _ => "",
        }
    }
}

/// The index of a `lines[N].field` name (`N` written plainly: `lines[01]` is no field).
fn line_index(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("lines[")?;
    let (digits, field) = rest.split_once("].")?;
    let index: usize = digits.parse().ok()?;
    (index < MAX_LINES && index.to_string() == digits && LINE_FIELDS.contains(&field))
        .then_some(index)
}

/// Whether `name` is one of the form's fields.
fn is_field(name: &str) -> bool {
    let address = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|f| f.strip_prefix('.'))
            .is_some_and(|f| ADDRESS_FIELDS.contains(&f))
    };
    matches!(
        name,
        "customer.name" | "customer.email" | "currency" | KEY_FIELD | SAME_AS_BILLING | ACTION
    ) || address("billing_address")
        || address("shipping_address")
        || line_index(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posted(body: &str) -> Result<(OrderForm, Action), PageError> {
        OrderForm::read(&Form::parse(body.as_bytes()).unwrap())
    }

    const VALID: &str = "idempotency_key=k-1&customer.name=Ada+Lovelace&customer.email=ada%40example.com\
        &billing_address.street=1+Analytical+Way&billing_address.zip=10115&billing_address.city=Berlin\
        &billing_address.country=DE&shipping_same_as_billing=on&currency=EUR\
        &lines%5B0%5D.sku=IPOD-NANO&lines%5B0%5D.name=iPod+nano&lines%5B0%5D.quantity=2\
        &lines%5B0%5D.unit_price=149&action=place";

    #[test]
    fn a_filled_form_is_the_api_request_and_same_as_billing_ships_there() {
        let (form, action) = posted(VALID).unwrap();
        assert_eq!(action, Action::Place);
        let order = form.validate().unwrap();
        assert_eq!(order.shipping_address(), order.billing_address());
        assert_eq!(order.total().get(), 29_800);
        assert_eq!(form.value("lines[0].sku"), "IPOD-NANO");
        assert_eq!(form.value("billing_address.city"), "Berlin");
    }

    #[test]
    fn errors_are_the_apis_and_name_the_inputs() {
        let body = VALID
            .replace("quantity=2", "quantity=two")
            .replace("ada%40example.com", "nope")
            .replace("&shipping_same_as_billing=on", "");
        let (form, _) = posted(&body).unwrap();
        let errors = form.validate().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"customer.email"), "{fields:?}");
        assert!(fields.contains(&"lines[0].quantity"), "{fields:?}");
        assert!(fields.contains(&"shipping_address.street"), "{fields:?}");
        let quantity = errors
            .iter()
            .find(|e| e.field == "lines[0].quantity")
            .unwrap();
        assert_eq!(quantity.message, "must be a whole number from 1 to 10000");
        let (blank, _) = posted(&VALID.replace("quantity=2", "quantity=")).unwrap();
        let errors = blank.validate().unwrap_err();
        assert_eq!(errors[0].message, "is required");
    }

    /// The unit price (or the errors) when line 0's price is `typed` in `currency`.
    fn priced(currency: &str, typed: &str) -> Result<i64, Vec<(String, String)>> {
        let body = VALID
            .replace("currency=EUR", &format!("currency={currency}"))
            .replace("unit_price=149", &format!("unit_price={typed}"));
        let (form, _) = posted(&body).unwrap();
        form.validate()
            .map(|order| order.lines()[0].unit_price().get())
            .map_err(|errors| errors.into_iter().map(|e| (e.field, e.message)).collect())
    }

    #[test]
    fn prices_are_typed_in_the_currencys_units_and_sent_in_minor_units() {
        assert_eq!(priced("EUR", "19.99"), Ok(1_999));
        assert_eq!(priced("EUR", "19.9"), Ok(1_990));
        assert_eq!(priced("EUR", "149"), Ok(14_900));
        assert_eq!(priced("JPY", "1999"), Ok(1_999));
        assert_eq!(priced("KWD", "1.005"), Ok(1_005));
    }

    #[test]
    fn a_price_with_more_decimals_than_its_currency_is_refused_beside_its_input() {
        let price = "lines[0].unit_price".to_owned();
        assert_eq!(
            priced("EUR", "19.999"),
            Err(vec![(
                price.clone(),
                "EUR has 2 decimal places; 19.999 has 3".to_owned()
            )])
        );
        assert_eq!(
            priced("JPY", "19.5"),
            Err(vec![(
                price.clone(),
                "JPY has no minor unit: type a whole amount; 19.5 has 1".to_owned()
            )])
        );
        assert_eq!(
            priced("EUR", "19%2C99"),
            Err(vec![(
                price.clone(),
                "must be an amount in EUR such as 19.99: digits and a decimal point".to_owned()
            )])
        );
        // The API's range and "required", said in the currency's units beside the input.
        assert_eq!(
            priced("EUR", "1000000.01"),
            Err(vec![(
                price.clone(),
                "must be from EUR 0.00 to EUR 1,000,000.00".to_owned()
            )])
        );
        assert_eq!(
            priced("JPY", "100000001"),
            Err(vec![(
                price.clone(),
                "must be from JPY 0 to JPY 100,000,000".to_owned()
            )])
        );
        assert_eq!(
            priced("EUR", ""),
            Err(vec![(price, "is required".to_owned())])
        );
        // Without a currency the price cannot be read: only the currency is wrong.
        let errors = priced("XAU", "19.999").unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0, "currency");
    }

    #[test]
    fn line_buttons_add_and_remove_lines() {
        let (mut form, action) = posted(&VALID.replace("action=place", "action=add-line")).unwrap();
        assert_eq!(action, Action::AddLine);
        assert!(form.apply(action));
        assert_eq!(form.lines.len(), 2);
        assert!(form.apply(Action::RemoveLine(0)));
        assert_eq!(form.lines, vec![LineInput::default()]);
        assert!(!form.apply(Action::RemoveLine(0)), "the last line stays");
    }

    #[test]
    fn foreign_fields_keys_and_buttons_are_refused() {
        for bad in [
            format!("{VALID}&total_cents=1"),
            format!("{VALID}&lines%5B100%5D.sku=X"),
            format!("{VALID}&lines%5B01%5D.sku=X"),
            format!("{VALID}&lines%5B0%5D.price=1"),
            format!("{VALID}&lines%5B0%5D.unit_price_cents=1"),
            VALID.replace("idempotency_key=k-1", "idempotency_key=has+space"),
            VALID.replace("idempotency_key=k-1&", ""),
            VALID.replace("action=place", "action=explode"),
            VALID.replace("action=place", "action=remove-line-100"),
        ] {
            assert!(posted(&bad).is_err(), "{bad}");
        }
    }
}
