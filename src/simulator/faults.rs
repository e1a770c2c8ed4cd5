//! Fault injection: the failures a crawler must survive (or must notice). Rates
//! are drawn from a seeded RNG, so a test sees the same failures on every run;
//! page faults strike page K of every crawl (the page number travels in the token).
//! Faults apply to the API actions only, never to the `/_sim/` admin endpoints.

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::generate::Rng;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Seeds the RNG the rates are drawn from; setting faults restarts it.
    /// (`fault_seed` too, the name of its flag.)
    #[serde(alias = "fault_seed")]
    pub seed: u64,
    /// Fraction of requests refused for throttling: `400 Throttling.User`, or with
    /// `retry_after_ms` set, `429 Throttling` plus `x-acs-retry-after: <ms>`.
    pub throttle_rate: f64,
    pub retry_after_ms: Option<u64>,
    /// Fraction of requests answered `500 InternalError`.
    pub error_500_rate: f64,
    /// Fraction of requests answered `503 ServiceUnavailable`.
    pub error_503_rate: f64,
    /// Added to every API request before it is answered.
    pub latency_ms: u64,
    /// From this page on (K >= 2), the answer repeats the request's own NextToken,
    /// forever: a stuck cursor.
    pub stuck_token_page: Option<u32>,
    /// Page K comes back without instances but with a NextToken that resumes
    /// exactly where it should have started.
    pub empty_page: Option<u32>,
    /// The last instance of page K is sent again at the start of page K+1.
    pub duplicate_page: Option<u32>,
    /// Page K is a 200 whose JSON body is cut short.
    pub malformed_json_page: Option<u32>,
    /// Page K is a `502` HTML page from a proxy, not JSON.
    pub html_502_page: Option<u32>,
    /// Every request for page K or later fails with `500 InternalError`.
    pub fail_from_page: Option<u32>,
    /// Page K ends the listing (an empty `NextToken`) while `TotalCount` still
    /// counts the instances after it: the service losing the rest of a listing,
    /// a trap the reference warns of.
    pub last_page_early: Option<u32>,
}

impl Faults {
    /// The rates are shares of the traffic: each between 0 and 1, together at
    /// most 1. `name` says a field as the caller knows it (`throttle_rate` in
    /// the control API's JSON, `--throttle-rate` on the command line).
    pub fn check(&self, name: impl Fn(&str) -> String) -> Result<(), String> {
        let rates = [
            ("throttle_rate", self.throttle_rate),
            ("error_500_rate", self.error_500_rate),
            ("error_503_rate", self.error_503_rate),
        ];
        for (field, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!(
                    "{} must be between 0 and 1, got {rate}",
                    name(field)
                ));
            }
        }
        if rates.iter().map(|(_, r)| r).sum::<f64>() > 1.0 {
            let names: Vec<String> = rates.iter().map(|(field, _)| name(field)).collect();
            return Err(format!("{} add up to more than 1", names.join(", ")));
        }
        Ok(())
    }
}

/// What happens to one page request, decided before the page is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageFault {
    None,
    MalformedJson,
    Html502,
    Fail,
}

impl Faults {
    /// One roll per request, so the three rates are exact shares of the traffic.
    pub fn draw(&self, rng: &mut Rng) -> Option<ApiError> {
        if self.throttle_rate <= 0.0 && self.error_500_rate <= 0.0 && self.error_503_rate <= 0.0 {
            return None;
        }
        let roll = rng.unit();
        if roll < self.throttle_rate {
            Some(ApiError::throttled(self.retry_after_ms))
        } else if roll < self.throttle_rate + self.error_500_rate {
            Some(ApiError::internal())
        } else if roll < self.throttle_rate + self.error_500_rate + self.error_503_rate {
            Some(ApiError::unavailable())
        } else {
            None
        }
    }

    pub fn page_fault(&self, page: u32) -> PageFault {
        if self.fail_from_page.is_some_and(|k| page >= k) {
            PageFault::Fail
        } else if self.html_502_page == Some(page) {
            PageFault::Html502
        } else if self.malformed_json_page == Some(page) {
            PageFault::MalformedJson
        } else {
            PageFault::None
        }
    }

    pub fn stuck_at(&self, page: u32) -> bool {
        self.stuck_token_page.is_some_and(|k| page >= k.max(2))
    }
}

/// The body of the 502 a misbehaving proxy in front of the API would send.
pub const HTML_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>Tengine</center>\r\n</body>\r\n</html>\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_takes_its_flag_name_too() {
        for body in [r#"{"seed": 7}"#, r#"{"fault_seed": 7}"#] {
            let faults: Faults = serde_json::from_str(body).unwrap();
            assert_eq!(faults.seed, 7, "{body}");
        }
    }

    #[test]
    fn rates_are_shares_of_a_seeded_sequence() {
        let faults = Faults {
            seed: 9,
            throttle_rate: 0.2,
            error_500_rate: 0.1,
            error_503_rate: 0.1,
            ..Faults::default()
        };
        let run = || {
            let mut rng = Rng::new(faults.seed);
            (0..10_000)
                .map(|_| faults.draw(&mut rng).map(|e| e.code))
                .collect::<Vec<_>>()
        };
        let codes = run();
        assert_eq!(codes, run(), "deterministic");
        let share = |c: &str| codes.iter().filter(|x| **x == Some(c)).count() as f64 / 10_000.0;
        assert!((share("Throttling.User") - 0.2).abs() < 0.02);
        assert!((share("InternalError") - 0.1).abs() < 0.02);
        assert!((share("ServiceUnavailable") - 0.1).abs() < 0.02);
    }

    #[test]
    fn page_faults_pick_their_page() {
        let faults = Faults {
            html_502_page: Some(3),
            fail_from_page: Some(5),
            stuck_token_page: Some(1),
            ..Faults::default()
        };
        assert_eq!(faults.page_fault(2), PageFault::None);
        assert_eq!(faults.page_fault(3), PageFault::Html502);
        assert_eq!(faults.page_fault(9), PageFault::Fail);
        assert!(!faults.stuck_at(1));
        assert!(faults.stuck_at(2));
    }
}
