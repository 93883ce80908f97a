//! The Chat Completions answer as typed, borrowing serde structs, read in one pass over the
//! bytes (no `serde_json::Value` tree): strings without escapes borrow from the body.
//!
//! The OpenAI family is loose about types (a `content` that is a string, an array or null, a
//! Mistral `arguments` object, numbers where ids go), and the decoder has always read what
//! it understood and skipped the rest. So every type here is lenient: a field of the wrong
//! type reads as absent instead of failing the whole answer, exactly as the `Value` lookups
//! (`as_str`, `as_u64`, `as_array`) it replaces did.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Reads a non-string leaf as `$default`.
macro_rules! skip_leaves {
    ($default:expr) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($default)
        }
    };
}

/// Reads any leaf, strings included, as `$default`.
macro_rules! skip_other_values {
    ($default:expr) => {
        skip_leaves!($default);
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($default)
        }
    };
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// A JSON leaf as the decoder reads it: a string (borrowed when it has no escapes) or an
/// integer; anything else is `Other`.
#[derive(Debug, Default)]
pub(crate) enum Scalar<'a> {
    #[default]
    Other,
    Str(Cow<'a, str>),
    U64(u64),
    I64(i64),
}

impl<'a> Scalar<'a> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(text) => Some(text),
            Self::Other | Self::U64(_) | Self::I64(_) => None,
        }
    }

    pub(crate) fn to_owned_str(&self) -> Option<String> {
        self.as_str().map(str::to_owned)
    }

    pub(crate) fn into_string(self) -> Option<String> {
        match self {
            Self::Str(text) => Some(text.into_owned()),
            Self::Other | Self::U64(_) | Self::I64(_) => None,
        }
    }

    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Self::U64(n) => Some(*n),
            Self::Other | Self::Str(_) | Self::I64(_) => None,
        }
    }

    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            Self::U64(n) => i64::try_from(*n).ok(),
            Self::I64(n) => Some(*n),
            Self::Other | Self::Str(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::U64(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::I64(v))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                drain_seq(seq).map(|()| Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                drain_map(map).map(|()| Scalar::Other)
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// Whether a field holds anything but `null`.
#[derive(Debug, Default)]
pub(crate) struct NotNull(pub(crate) bool);

impl<'de> Deserialize<'de> for NotNull {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NotNullVisitor;
        impl<'de> Visitor<'de> for NotNullVisitor {
            type Value = NotNull;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(NotNull(true))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(NotNull(true))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(NotNull(true))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(NotNull(true))
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(NotNull(true))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(NotNull(false))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(NotNull(false))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                drain_seq(seq).map(|()| NotNull(true))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                drain_map(map).map(|()| NotNull(true))
            }
        }
        deserializer.deserialize_any(NotNullVisitor)
    }
}

/// An array of `T` (`None` when the field is not an array).
#[derive(Debug)]
pub(crate) struct List<T>(pub(crate) Option<Vec<T>>);

impl<T> Default for List<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            skip_other_values!(List(None));
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(List(Some(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                drain_map(map).map(|()| List(None))
            }
        }
        deserializer.deserialize_any(ListVisitor(PhantomData))
    }
}

/// `content`: a string, an array of parts, or anything else (no text).
#[derive(Debug, Default)]
pub(crate) enum Content<'a> {
    #[default]
    Other,
    Text(Cow<'a, str>),
    Parts(Vec<Part<'a>>),
}

impl Content<'_> {
    /// The text: the string, or the text parts joined (a part without a `type` string is
    /// read as text).
    pub(crate) fn into_text(self) -> String {
        match self {
            Self::Other => String::new(),
            Self::Text(text) => text.into_owned(),
            Self::Parts(parts) => parts
                .iter()
                .filter(|part| {
                    part.kind.as_ref().and_then(Scalar::as_str).is_none_or(|t| t == "text")
                })
                .filter_map(|part| part.text.as_ref().and_then(Scalar::as_str))
                .collect(),
        }
    }
}

impl<'de> Deserialize<'de> for Content<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = Content<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            skip_leaves!(Content::Other);
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::new();
                while let Some(part) = seq.next_element()? {
                    parts.push(part);
                }
                Ok(Content::Parts(parts))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                drain_map(map).map(|()| Content::Other)
            }
        }
        deserializer.deserialize_any(ContentVisitor)
    }
}

/// A lenient JSON object: the named fields that are present are read (each `Some`, even a
/// `null` one), the rest skipped; a value that is not an object reads as the default with
/// `is_object` false.
macro_rules! lenient_object {
    ($(#[$meta:meta])* $name:ident { $($field:ident: $ty:ty = $key:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub(crate) struct $name<'a> {
            #[allow(dead_code, reason = "read only where the object-ness matters (usage)")]
            pub(crate) is_object: bool,
            $(pub(crate) $field: Option<$ty>,)*
            _body: PhantomData<&'a ()>,
        }

        impl<'de> Deserialize<'de> for $name<'de> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct ObjectVisitor;
                impl<'de> Visitor<'de> for ObjectVisitor {
                    type Value = $name<'de>;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("any JSON value")
                    }
                    skip_other_values!($name::default());
                    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                        drain_seq(seq).map(|()| $name::default())
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                        let mut object = $name { is_object: true, ..$name::default() };
                        while let Some(key) = map.next_key::<Scalar<'de>>()? {
                            match key.as_str() {
                                $(Some($key) => object.$field = Some(map.next_value()?),)*
                                _ => {
                                    map.next_value::<IgnoredAny>()?;
                                }
                            }
                        }
                        Ok(object)
                    }
                }
                deserializer.deserialize_any(ObjectVisitor)
            }
        }
    };
}

lenient_object! {
    /// A content part.
    Part { kind: Scalar<'a> = "type", text: Scalar<'a> = "text", }
}

lenient_object! {
    /// `function` of a tool call: `arguments` is a string, or (Mistral) an object.
    Function { name: Scalar<'a> = "name", arguments: Value = "arguments", }
}

lenient_object! {
    /// A tool call, whole or as a stream's delta.
    Call { index: Scalar<'a> = "index", id: Scalar<'a> = "id", function: Function<'a> = "function", }
}

lenient_object! {
    /// A message or a stream's delta.
    Message {
        content: Content<'a> = "content",
        refusal: Scalar<'a> = "refusal",
        tool_calls: List<Call<'a>> = "tool_calls",
    }
}

lenient_object! {
    /// One choice.
    Choice {
        message: Message<'a> = "message",
        delta: Message<'a> = "delta",
        finish_reason: Scalar<'a> = "finish_reason",
    }
}

lenient_object! {
    /// What the completion tokens were spent on.
    CompletionTokensDetails { reasoning_tokens: Scalar<'a> = "reasoning_tokens", }
}

lenient_object! {
    /// Token counts.
    Usage {
        prompt_tokens: Scalar<'a> = "prompt_tokens",
        completion_tokens: Scalar<'a> = "completion_tokens",
        total_tokens: Scalar<'a> = "total_tokens",
        completion_tokens_details: CompletionTokensDetails<'a> = "completion_tokens_details",
    }
}

lenient_object! {
    /// Groq's `x_groq`: usage at the end of a stream, or why it stopped early.
    XGroq { usage: Usage<'a> = "usage", error: Scalar<'a> = "error", }
}

lenient_object! {
    /// A whole answer or a stream chunk.
    Answer {
        error: NotNull = "error",
        id: Scalar<'a> = "id",
        model: Scalar<'a> = "model",
        choices: List<Choice<'a>> = "choices",
        usage: Usage<'a> = "usage",
        x_groq: XGroq<'a> = "x_groq",
        system_fingerprint: Scalar<'a> = "system_fingerprint",
        created: Scalar<'a> = "created",
    }
}

/// The text of a field that may be missing.
pub(crate) fn owned(scalar: Option<&Scalar<'_>>) -> Option<String> {
    scalar.and_then(Scalar::to_owned_str)
}
