//! Conversions between token claims (JSON) and CEL values, bounded in depth and size: the
//! only way claims enter an evaluation and mapped values leave it.

use super::*;

/// `object` as a CEL map; `budget` is how many more values may be converted (see
/// [`MAX_CLAIM_VALUES`]).
pub(super) fn object_to_cel(
    object: &serde_json::Map<String, Json>,
    depth: usize,
    budget: &mut usize,
) -> Result<Value, EvalError> {
    if depth > MAX_CLAIMS_DEPTH {
        return Err(too_deep());
    }
    let mut map = std::collections::HashMap::with_capacity(object.len());
    for (k, v) in object {
        map.insert(Key::from(k.as_str()), json_to_cel(v, depth + 1, budget)?);
    }
    Ok(Value::Map(Map { map: Arc::new(map) }))
}

/// Checks `object` against the bounds [`object_to_cel`] applies (depth, number of values),
/// with the same errors, without building anything.
pub(super) fn measure_object(
    object: &serde_json::Map<String, Json>,
    depth: usize,
    budget: &mut usize,
) -> Result<(), EvalError> {
    if depth > MAX_CLAIMS_DEPTH {
        return Err(too_deep());
    }
    object
        .values()
        .try_for_each(|v| measure(v, depth + 1, budget))
}

fn measure(value: &Json, depth: usize, budget: &mut usize) -> Result<(), EvalError> {
    if depth > MAX_CLAIMS_DEPTH {
        return Err(too_deep());
    }
    *budget = budget
        .checked_sub(1)
        .ok_or_else(|| EvalError(format!("claims hold more than {MAX_CLAIM_VALUES} values")))?;
    match value {
        Json::Array(items) => items.iter().try_for_each(|i| measure(i, depth + 1, budget)),
        Json::Object(object) => measure_object(object, depth, budget),
        _ => Ok(()),
    }
}

/// The claims named in `names` (those present) as a CEL map; the token was measured first.
pub(super) fn named_claims_to_cel(
    claims: &serde_json::Map<String, Json>,
    names: &[String],
) -> Result<Value, EvalError> {
    let mut budget = MAX_CLAIM_VALUES;
    let mut map = std::collections::HashMap::with_capacity(names.len());
    for name in names {
        if let Some(v) = claims.get(name) {
            map.insert(Key::from(name.as_str()), json_to_cel(v, 1, &mut budget)?);
        }
    }
    Ok(Value::Map(Map { map: Arc::new(map) }))
}

pub(super) fn json_to_cel(
    value: &Json,
    depth: usize,
    budget: &mut usize,
) -> Result<Value, EvalError> {
    if depth > MAX_CLAIMS_DEPTH {
        return Err(too_deep());
    }
    *budget = budget
        .checked_sub(1)
        .ok_or_else(|| EvalError(format!("claims hold more than {MAX_CLAIM_VALUES} values")))?;
    Ok(match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                // serde_json without arbitrary_precision: every other number is an f64.
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(items) => {
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                list.push(json_to_cel(item, depth + 1, budget)?);
            }
            Value::List(Arc::new(list))
        }
        Json::Object(object) => object_to_cel(object, depth, budget)?,
    })
}

pub(super) fn cel_to_json(value: &Value, depth: usize) -> Result<Json, EvalError> {
    if depth > MAX_CLAIMS_DEPTH {
        return Err(too_deep());
    }
    Ok(match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::UInt(u) => Json::from(*u),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .ok_or_else(|| EvalError("expression yields a non-finite number".into()))?,
        Value::String(s) => Json::String(s.as_str().to_string()),
        Value::List(items) => Json::Array(
            items
                .iter()
                .map(|v| cel_to_json(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(map) => {
            let mut object = serde_json::Map::with_capacity(map.map.len());
            for (k, v) in map.map.iter() {
                let Key::String(k) = k else {
                    return Err(EvalError(
                        "expression yields a map with non-string keys".into(),
                    ));
                };
                object.insert(k.as_str().to_string(), cel_to_json(v, depth + 1)?);
            }
            Json::Object(object)
        }
        other => {
            return Err(EvalError(format!(
                "expression yields {}, which has no JSON form",
                type_name(other)
            )));
        }
    })
}

pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::List(_) => "a list",
        Value::Map(_) => "a map",
        Value::Function(..) => "a function",
        Value::Int(_) => "an int",
        Value::UInt(_) => "a uint",
        Value::Float(_) => "a double",
        Value::String(_) => "a string",
        Value::Bytes(_) => "bytes",
        Value::Bool(_) => "a bool",
        Value::Null => "null",
        _ => "an opaque value",
    }
}

pub(super) fn too_deep() -> EvalError {
    EvalError(format!(
        "claims are nested deeper than {MAX_CLAIMS_DEPTH} levels"
    ))
}

/// Collapses a message to one bounded line: `cel` errors may span lines and quote claim values.
pub(super) fn one_line(message: &str) -> String {
    let flat: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.len() <= MAX_ERROR_LEN {
        return flat;
    }
    let mut end = MAX_ERROR_LEN;
    while !flat.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &flat[..end])
}
