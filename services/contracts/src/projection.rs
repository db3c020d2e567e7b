//! The projection: a pure fold of the four writing services' events, in
//! causal order, into what each country may see. No IO: the same function
//! runs live, on restart and in a rebuild, and its tests need neither NATS
//! nor disk.
//!
//! Who sees a stream is never decided here: after each event the stream's
//! audience is asked of its contract (`Aggregate::audience`, with the facts
//! the owning service itself decides with, folded by the contract's own
//! fold), and an intel stream's audience is asked again whenever the
//! membership of its operation changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::crisis::Crisis;
use crate::deployments::Deployments;
use crate::intel::Intel;
use crate::operations::membership::OperationsView;
use crate::operations::{self, Operations};
use concord_core::decider::{Aggregate, Audience, read_event};
use concord_core::{CountryCode, EventEnvelope, Role, Service};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Who an item or an event reaches, from its stream's audience. Auditors
/// reach everything and are not listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reach {
    pub everyone: bool,
    pub countries: BTreeSet<CountryCode>,
    /// Reviewers, whatever their country (notice requests under review).
    pub reviewers: bool,
}

impl Reach {
    pub fn of(audience: &Audience) -> Reach {
        Reach {
            everyone: audience.everyone,
            countries: audience.countries.clone(),
            reviewers: audience.roles.contains(&Role::Reviewer),
        }
    }

    /// Whether the liaisons and coordinators of `country` see it.
    pub fn country(&self, country: CountryCode) -> bool {
        self.everyone || self.countries.contains(&country)
    }

    /// Whether a caller of `role` in `country` sees it.
    pub fn admits(&self, country: CountryCode, role: Role) -> bool {
        role == Role::Auditor || self.country(country) || (self.reviewers && role == Role::Reviewer)
    }
}

/// One stream as the views show it: its service, name, version and who
/// sees it now. What it shows is rendered from its state when it is read
/// (`Projection::view`): a view grows with its stream (an operation's every
/// task), so rendering it on every event made each event cost as much as
/// the whole stream. Items kept by earlier releases carry a rendered
/// `view`, which reading ignores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub service: Service,
    pub stream: String,
    pub version: u64,
    pub reach: Reach,
}

/// What applying one event did: its feed position, who it reached, and
/// the items whose view or reach changed (to store).
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub position: u64,
    pub reach: Reach,
    pub changed: Vec<(Service, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectionError {
    /// An event this release cannot read, or that cannot follow its
    /// stream's state: the logs say something the contracts do not allow.
    #[error("{service} seq {seq}: {why}")]
    Unreadable { service: Service, seq: u64, why: String },
}

/// The states of one service's streams.
type States<A> = HashMap<String, <A as Aggregate>::State>;

/// Everything the views are made of. `Default` is the projection of no
/// event at all.
#[derive(Default)]
pub struct Projection {
    operations: States<Operations>,
    intel: States<Intel>,
    crisis: States<Crisis>,
    deployments: States<Deployments>,
    /// Intel's facts: membership of operations, as intel folds it.
    membership: OperationsView,
    /// Intel streams by the operation they belong to, to ask their
    /// audience again when its membership changes.
    by_operation: HashMap<Uuid, BTreeSet<String>>,
    items: BTreeMap<(Service, String), Item>,
    /// The feed position of the last event applied (0: none).
    position: u64,
}

/// Folds one event of `A` into `states`; the stream's new state.
fn fold<'s, A: Aggregate>(states: &'s mut States<A>, e: &EventEnvelope) -> Result<&'s A::State, String> {
    let event = read_event::<A>(e)?;
    let state = states.remove(&e.stream).unwrap_or_default();
    let next = A::evolve(state, &event)?;
    Ok(states.entry(e.stream.clone()).or_insert(next))
}

fn item<A: Aggregate>(e: &EventEnvelope, state: &A::State, facts: &A::Facts) -> Item {
    Item {
        service: A::SERVICE,
        stream: e.stream.clone(),
        version: e.version,
        reach: Reach::of(&A::audience(state, facts)),
    }
}

/// The operation an intel stream belongs to, as its view names it.
fn operation_of(state: &<Intel as Aggregate>::State) -> Option<Uuid> {
    Intel::view(state)
        .get("operation_id")
        .and_then(Value::as_str)
        .and_then(|o| Uuid::parse_str(o).ok())
}

impl Projection {
    /// Applies `e`, the next event in causal order. An event that does not
    /// read changes nothing and is an error.
    pub fn apply(&mut self, e: &EventEnvelope) -> Result<Applied, ProjectionError> {
        let unreadable = |why: String| ProjectionError::Unreadable {
            service: e.service,
            seq: e.seq,
            why,
        };
        let mut changed = vec![(e.service, e.stream.clone())];
        let item = match e.service {
            Service::Operations => {
                let operation_id = operations::STREAM.id_of(&e.stream).map_err(unreadable)?;
                let event = read_event::<Operations>(e).map_err(unreadable)?;
                let state = fold::<Operations>(&mut self.operations, e).map_err(unreadable)?;
                let item = item::<Operations>(e, state, &());
                self.membership.apply(operation_id, &event).map_err(unreadable)?;
                // Who sees the operation's leads and arrests follows its
                // membership (a removed country no longer does).
                for stream in self.by_operation.get(&operation_id).into_iter().flatten() {
                    if let (Some(state), Some(old)) = (
                        self.intel.get(stream),
                        self.items.get_mut(&(Service::Intel, stream.clone())),
                    ) {
                        let reach = Reach::of(&Intel::audience(state, &self.membership));
                        if reach != old.reach {
                            old.reach = reach;
                            changed.push((Service::Intel, stream.clone()));
                        }
                    }
                }
                item
            }
            Service::Intel => {
                let state = fold::<Intel>(&mut self.intel, e).map_err(unreadable)?;
                let item = item::<Intel>(e, state, &self.membership);
                if let Some(op) = operation_of(state) {
                    self.by_operation.entry(op).or_default().insert(e.stream.clone());
                }
                item
            }
            Service::Crisis => {
                let state = fold::<Crisis>(&mut self.crisis, e).map_err(unreadable)?;
                // Crisis's audience needs no facts of its own (every
                // country sees a crisis); its facts type is what it decides
                // with.
                item::<Crisis>(e, state, &Default::default())
            }
            Service::Deployments => {
                let state = fold::<Deployments>(&mut self.deployments, e).map_err(unreadable)?;
                item::<Deployments>(e, state, &Default::default())
            }
            // Who read what is no country's to see.
            Service::Audit => return Err(unreadable("the views hold no access record".into())),
        };
        self.position += 1;
        let reach = item.reach.clone();
        self.items.insert((e.service, e.stream.clone()), item);
        Ok(Applied {
            position: self.position,
            reach,
            changed,
        })
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn item(&self, service: Service, stream: &str) -> Option<&Item> {
        self.items.get(&(service, stream.to_owned()))
    }

    /// What `item` shows: its contract's view of its stream's state now
    /// (`null` for an item this projection holds no state of).
    pub fn view(&self, item: &Item) -> Value {
        fn render<A: Aggregate>(m: &States<A>, stream: &str) -> Value {
            m.get(stream).map_or(Value::Null, A::view)
        }
        match item.service {
            Service::Operations => render::<Operations>(&self.operations, &item.stream),
            Service::Intel => render::<Intel>(&self.intel, &item.stream),
            Service::Crisis => render::<Crisis>(&self.crisis, &item.stream),
            Service::Deployments => render::<Deployments>(&self.deployments, &item.stream),
            Service::Audit => Value::Null,
        }
    }

    /// Every item, in `(service, stream)` order.
    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.items.values()
    }

    /// The items after `after` (exclusive) that `country`'s `role` sees,
    /// at most `max`, in `(service, stream)` order.
    pub fn seen_by(
        &self,
        country: CountryCode,
        role: Role,
        after: Option<&(Service, String)>,
    ) -> impl Iterator<Item = &Item> {
        let range = match after {
            Some(k) => self
                .items
                .range::<(Service, String), _>((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded)),
            None => self.items.range::<(Service, String), _>(..),
        };
        range.map(|(_, i)| i).filter(move |i| i.reach.admits(country, role))
    }

    /// What to keep of one stream: its state and its item.
    pub fn kept(&self, service: Service, stream: &str) -> Option<Kept> {
        fn state<A: Aggregate>(m: &States<A>, stream: &str) -> Option<Value>
        where
            A::State: Serialize,
        {
            m.get(stream).and_then(|s| serde_json::to_value(s).ok())
        }
        let state = match service {
            Service::Operations => state::<Operations>(&self.operations, stream),
            Service::Intel => state::<Intel>(&self.intel, stream),
            Service::Crisis => state::<Crisis>(&self.crisis, stream),
            Service::Deployments => state::<Deployments>(&self.deployments, stream),
            Service::Audit => None,
        }?;
        let item = self.item(service, stream)?.clone();
        Some(Kept { state, item })
    }

    /// `kept` as the bytes the store writes, serialized straight from the
    /// typed state and the item: a kept state grows with its stream (an
    /// operation's every task), and going through `kept`'s `Value` would
    /// copy it twice more on every burst that changes the stream. The
    /// bytes read back as `kept`'s `Kept`.
    pub fn kept_bytes(&self, service: Service, stream: &str) -> Option<Result<Vec<u8>, serde_json::Error>> {
        #[derive(Serialize)]
        struct KeptRef<'a, S> {
            state: &'a S,
            item: &'a Item,
        }
        fn bytes<A: Aggregate>(m: &States<A>, stream: &str, item: &Item) -> Option<Result<Vec<u8>, serde_json::Error>>
        where
            A::State: Serialize,
        {
            m.get(stream).map(|state| serde_json::to_vec(&KeptRef { state, item }))
        }
        let item = self.item(service, stream)?;
        match service {
            Service::Operations => bytes::<Operations>(&self.operations, stream, item),
            Service::Intel => bytes::<Intel>(&self.intel, stream, item),
            Service::Crisis => bytes::<Crisis>(&self.crisis, stream, item),
            Service::Deployments => bytes::<Deployments>(&self.deployments, stream, item),
            Service::Audit => None,
        }
    }

    /// Intel's facts as folded so far (kept beside the streams).
    pub fn membership(&self) -> &OperationsView {
        &self.membership
    }

    /// The projection that kept `streams`, `membership` and `position`.
    pub fn resume(
        streams: impl IntoIterator<Item = Kept>,
        membership: OperationsView,
        position: u64,
    ) -> Result<Projection, String> {
        fn put<A: Aggregate>(m: &mut States<A>, stream: &str, state: Value) -> Result<(), String>
        where
            A::State: for<'de> Deserialize<'de>,
        {
            let state = serde_json::from_value(state).map_err(|e| format!("kept state of {stream}: {e}"))?;
            m.insert(stream.to_owned(), state);
            Ok(())
        }
        let mut p = Projection {
            membership,
            position,
            ..Projection::default()
        };
        for Kept { state, item } in streams {
            let stream = item.stream.clone();
            match item.service {
                Service::Operations => put::<Operations>(&mut p.operations, &stream, state)?,
                Service::Intel => {
                    put::<Intel>(&mut p.intel, &stream, state)?;
                    if let Some(op) = p.intel.get(&stream).and_then(operation_of) {
                        p.by_operation.entry(op).or_default().insert(stream.clone());
                    }
                }
                Service::Crisis => put::<Crisis>(&mut p.crisis, &stream, state)?,
                Service::Deployments => put::<Deployments>(&mut p.deployments, &stream, state)?,
                Service::Audit => return Err(format!("kept stream {stream}: the views hold no access record")),
            }
            p.items.insert((item.service, stream), item);
        }
        Ok(p)
    }
}

/// One stream as kept on disk: its contract state (to fold the next event
/// into) and its item (what the views serve).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    pub state: Value,
    pub item: Item,
}

impl Kept {
    /// The stream kept as `state` (`None`: kept before its first event)
    /// with `tail`, its events after that state, folded in as
    /// [`Projection::apply`] folds them, and `item` as it stood after the
    /// last of them. Lets a store keep a large stream's state now and then
    /// and only its new events in between. Each event must be the
    /// stream's own and follow the one before it by one version, starting
    /// right after `state`'s (`from_version`).
    pub fn fold_tail(
        state: Option<Value>,
        from_version: u64,
        tail: &[EventEnvelope],
        item: Item,
    ) -> Result<Kept, String> {
        fn go<A: Aggregate>(
            state: Option<Value>,
            from_version: u64,
            tail: &[EventEnvelope],
            item: &Item,
        ) -> Result<Value, String>
        where
            A::State: Serialize + for<'de> Deserialize<'de>,
        {
            let mut folded: A::State = match state {
                Some(v) => serde_json::from_value(v).map_err(|e| format!("kept state of {}: {e}", item.stream))?,
                None => A::State::default(),
            };
            let mut version = from_version;
            for e in tail {
                if e.service != item.service || e.stream != item.stream || e.version != version + 1 {
                    return Err(format!(
                        "kept events of {}: {} {} version {} does not follow version {version}",
                        item.stream, e.service, e.stream, e.version
                    ));
                }
                let event = read_event::<A>(e)?;
                folded = A::evolve(folded, &event)?;
                version = e.version;
            }
            if version != item.version {
                return Err(format!(
                    "kept events of {} end at version {version}, its item says {}",
                    item.stream, item.version
                ));
            }
            serde_json::to_value(&folded).map_err(|e| format!("kept state of {}: {e}", item.stream))
        }
        let state = match item.service {
            Service::Operations => go::<Operations>(state, from_version, tail, &item)?,
            Service::Intel => go::<Intel>(state, from_version, tail, &item)?,
            Service::Crisis => go::<Crisis>(state, from_version, tail, &item)?,
            Service::Deployments => go::<Deployments>(state, from_version, tail, &item)?,
            Service::Audit => return Err(format!("kept stream {}: the views hold no access record", item.stream)),
        };
        Ok(Kept { state, item })
    }
}
