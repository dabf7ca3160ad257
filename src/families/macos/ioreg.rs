//! `ioreg` output: the GPU statistics of `ioreg -r -d 1 -w 0 -c
//! IOAccelerator` (text) and the battery of `ioreg -r -c AppleSmartBattery`
//! (`-a` XML plist, or text). Neither needs root. Formats: docs/FORMATS.md,
//! macOS ioreg; all keys are private driver properties known only from
//! captured output.
//!
//! The text form prints one registry entry per `+-o Name  <class …>` line,
//! then one top-level property per line as `"key" = value`; nested
//! dictionaries are printed inline as `{"key"=value,…}`. The parser below
//! reads values properly (quoted strings, nested `{}` and `()`), which
//! handles the traps of the text form: `"In use system memory (driver)"`
//! printed before `"In use system memory"` (keys are compared whole), the
//! same names inside `IOReportLegend` (another property, never looked at),
//! and integers ≥ 2^53 (kept as integers, never through f64).

use crate::sources::ParseError;

/// One value of the text form.
#[derive(Debug, Clone, PartialEq)]
pub enum IoValue {
    /// ioreg prints OSNumbers unsigned; i128 holds every u64 and negatives.
    Int(i128),
    Bool(bool),
    Str(String),
    Dict(Vec<(String, IoValue)>),
    Array(Vec<IoValue>),
    /// `<hex data>` and anything else, as printed.
    Raw(String),
}

impl IoValue {
    pub fn get(&self, key: &str) -> Option<&IoValue> {
        match self {
            IoValue::Dict(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i128> {
        match self {
            IoValue::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// One registry entry of the text form.
#[derive(Debug, Clone, PartialEq)]
pub struct IoEntry {
    /// The IOKit class (`AGXAcceleratorG13X`), else the entry name.
    pub class: String,
    pub props: Vec<(String, IoValue)>,
}

impl IoEntry {
    pub fn get(&self, key: &str) -> Option<&IoValue> {
        self.props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// Splits text output into entries with their top-level properties. A
/// property whose value cannot be read (output cut short) is left out.
pub fn parse_entries(text: &str) -> Vec<IoEntry> {
    let mut entries: Vec<IoEntry> = Vec::new();
    for line in text.lines() {
        // Tree drawing: "| ", "+-o" at any depth.
        let line = line.trim_start_matches([' ', '|', '\t']);
        if let Some(head) = line.strip_prefix("+-o ") {
            let class = head
                .split_once("<class ")
                .and_then(|(_, rest)| rest.split([',', '>']).next())
                .unwrap_or_else(|| head.split_whitespace().next().unwrap_or(""))
                .trim()
                .to_owned();
            entries.push(IoEntry {
                class,
                props: Vec::new(),
            });
        } else if line.starts_with('"') {
            let Some(entry) = entries.last_mut() else {
                continue;
            };
            let mut p = Parser::new(line);
            let Some(key) = p.string() else { continue };
            p.skip_ws();
            if !p.eat(b'=') {
                continue;
            }
            p.skip_ws();
            if let Some(v) = p.value() {
                entry.props.push((key, v));
            }
        }
    }
    entries
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser {
            s: s.as_bytes(),
            i: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b == b' ' || b == b'\t') {
            self.i += 1;
        }
    }

    /// A quoted string; ioreg escapes nothing but `\"` and `\\`.
    fn string(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return String::from_utf8(out).ok();
                }
                b'\\' => {
                    self.i += 1;
                    out.push(self.peek()?);
                    self.i += 1;
                }
                b => {
                    out.push(b);
                    self.i += 1;
                }
            }
        }
    }

    /// Depth-limited so hostile input cannot overflow the stack.
    fn value(&mut self) -> Option<IoValue> {
        self.value_at(0)
    }

    fn value_at(&mut self, depth: usize) -> Option<IoValue> {
        if depth > 32 {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(IoValue::Str),
            b'{' => {
                self.i += 1;
                let mut entries = Vec::new();
                loop {
                    if self.eat(b'}') {
                        return Some(IoValue::Dict(entries));
                    }
                    let k = self.string()?;
                    if !self.eat(b'=') {
                        return None;
                    }
                    let v = self.value_at(depth + 1)?;
                    entries.push((k, v));
                    if !self.eat(b',') && self.peek() != Some(b'}') {
                        return None;
                    }
                }
            }
            b'(' => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    if self.eat(b')') {
                        return Some(IoValue::Array(items));
                    }
                    items.push(self.value_at(depth + 1)?);
                    if !self.eat(b',') && self.peek() != Some(b')') {
                        return None;
                    }
                }
            }
            b'<' => {
                let start = self.i;
                while self.peek()? != b'>' {
                    self.i += 1;
                }
                self.i += 1;
                Some(IoValue::Raw(self.text(start)))
            }
            _ => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b')'))
                {
                    self.i += 1;
                }
                let word = self.text(start);
                let word = word.trim();
                Some(match word {
                    "Yes" => IoValue::Bool(true),
                    "No" => IoValue::Bool(false),
                    w => match w.parse::<i128>() {
                        Ok(i) => IoValue::Int(i),
                        Err(_) if w.is_empty() => return None,
                        Err(_) => IoValue::Raw(w.to_owned()),
                    },
                })
            }
        }
    }

    fn text(&self, start: usize) -> String {
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
}

/// GPU statistics of one accelerator.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceleratorStats {
    /// `model` ("Apple M2 Max") when printed, else the IOKit class.
    pub name: String,
    /// apple, amd, intel or nvidia, from the driver class.
    pub vendor: &'static str,
    /// "Device Utilization %" (else the older "GPU Activity(%)"), 0–100.
    pub utilization_percent: Option<f64>,
    /// "In use system memory", bytes (unified memory on Apple Silicon).
    pub in_use_bytes: Option<u64>,
}

fn vendor_of(class: &str) -> &'static str {
    if class.starts_with("AGX") {
        "apple"
    } else if class.starts_with("AMD") {
        "amd"
    } else if class.starts_with("Intel") {
        "intel"
    } else if class.starts_with("NVDA") || class.starts_with("GeForce") {
        "nvidia"
    } else {
        "unknown"
    }
}

/// The accelerators that publish PerformanceStatistics, in ioreg order
/// (that order is `gpu.index`).
pub fn parse_accelerators(text: &str) -> Vec<AcceleratorStats> {
    parse_entries(text)
        .into_iter()
        .filter_map(|e| {
            let stats = e.get("PerformanceStatistics")?;
            let percent = |k: &str| {
                stats
                    .get(k)?
                    .as_int()
                    .filter(|p| (0..=100).contains(p))
                    .map(|p| p as f64)
            };
            let name = match e.get("model") {
                Some(IoValue::Str(m)) if !m.trim().is_empty() => m.trim().to_owned(),
                _ => e.class.clone(),
            };
            Some(AcceleratorStats {
                vendor: vendor_of(&e.class),
                utilization_percent: percent("Device Utilization %")
                    .or_else(|| percent("GPU Activity(%)")),
                in_use_bytes: stats
                    .get("In use system memory")
                    .and_then(IoValue::as_int)
                    .and_then(|b| u64::try_from(b).ok()),
                name,
            })
        })
        .collect()
}

/// The AppleSmartBattery properties the battery source uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatteryReading {
    /// Pack voltage, mV.
    pub voltage_mv: u64,
    /// Instantaneous current, mA; negative while discharging.
    pub amperage_ma: i64,
    pub is_charging: Option<bool>,
    pub external_connected: Option<bool>,
    /// CurrentCapacity and MaxCapacity: mAh on Intel Macs, percent (of
    /// 100) on Apple Silicon; their ratio is the charge either way.
    pub current_capacity: Option<u64>,
    pub max_capacity: Option<u64>,
    /// TimeRemaining, minutes; 65535 while macOS is still estimating.
    pub time_remaining_min: Option<u64>,
}

impl BatteryReading {
    /// Discharge power in W: V × |I| while current flows out of the pack,
    /// 0 while charging or idle on AC (the registry's battery_watts). The
    /// sign of InstantAmperage is the direction: a Mac on a too-weak
    /// adapter discharges with ExternalConnected = Yes.
    pub fn discharge_watts(&self) -> f64 {
        if self.amperage_ma < 0 {
            self.voltage_mv as f64 * self.amperage_ma.unsigned_abs() as f64 / 1e6
        } else {
            0.0
        }
    }

    /// Charge in percent from CurrentCapacity / MaxCapacity.
    pub fn charge_percent(&self) -> Option<f64> {
        let (now, max) = (self.current_capacity?, self.max_capacity?);
        (max > 0).then(|| (now as f64 / max as f64 * 100.0).clamp(0.0, 100.0))
    }

    /// Seconds to empty while discharging, when macOS has an estimate.
    pub fn time_left_s(&self) -> Option<f64> {
        let min = self.time_remaining_min.filter(|&m| m != 65535)?;
        (self.amperage_ma < 0).then_some(min as f64 * 60.0)
    }
}

/// ioreg prints the signed current as unsigned 64-bit
/// (`18446744073709551249` is −367 mA): two's complement back.
pub fn signed_ma(v: i128) -> Option<i64> {
    if v >= 1 << 64 {
        None
    } else if v >= 1 << 63 {
        i64::try_from(v - (1i128 << 64)).ok()
    } else {
        i64::try_from(v).ok()
    }
}

/// `ioreg -r -c AppleSmartBattery -a`. `Ok(None)`: no battery (an empty
/// array, or BatteryInstalled = false).
pub fn parse_battery_xml(xml: &[u8]) -> Result<Option<BatteryReading>, ParseError> {
    if xml.trim_ascii().is_empty() {
        return Ok(None);
    }
    let v = plist::Value::from_reader_xml(xml)
        .map_err(|e| ParseError(format!("AppleSmartBattery plist: {e}")))?;
    // -r prints an array of matching entries; a single dict is accepted too.
    let dict = match &v {
        plist::Value::Array(items) => match items.iter().find_map(plist::Value::as_dictionary) {
            Some(d) => d,
            None => return Ok(None),
        },
        plist::Value::Dictionary(d) => d,
        _ => return Err(ParseError("AppleSmartBattery plist: not a dict".into())),
    };
    let int = |k: &str| -> Option<i128> {
        let v = dict.get(k)?;
        v.as_signed_integer()
            .map(i128::from)
            .or_else(|| v.as_unsigned_integer().map(i128::from))
    };
    let flag = |k: &str| dict.get(k).and_then(plist::Value::as_boolean);
    battery_from(int, |k| flag(k))
}

/// `ioreg -r -w0 -c AppleSmartBattery` (text). Only top-level properties
/// are read: nested dicts repeat `Voltage` (the adapter's, 20000 mV).
pub fn parse_battery_text(text: &str) -> Result<Option<BatteryReading>, ParseError> {
    let entries = parse_entries(text);
    let Some(e) = entries.first() else {
        return Ok(None);
    };
    let flag = |k: &str| match e.get(k) {
        Some(IoValue::Bool(b)) => Some(*b),
        _ => None,
    };
    battery_from(|k| e.get(k).and_then(IoValue::as_int), flag)
}

fn battery_from(
    int: impl Fn(&str) -> Option<i128>,
    flag: impl Fn(&str) -> Option<bool>,
) -> Result<Option<BatteryReading>, ParseError> {
    if flag("BatteryInstalled") == Some(false) {
        return Ok(None);
    }
    let unsigned = |k: &str| int(k).and_then(|v| u64::try_from(v).ok());
    let voltage_mv = int("Voltage")
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| ParseError("AppleSmartBattery: no valid Voltage".into()))?;
    let amperage_ma = int("InstantAmperage")
        .and_then(signed_ma)
        .ok_or_else(|| ParseError("AppleSmartBattery: no valid InstantAmperage".into()))?;
    Ok(Some(BatteryReading {
        voltage_mv,
        amperage_ma,
        is_charging: flag("IsCharging"),
        external_connected: flag("ExternalConnected"),
        current_capacity: unsigned("CurrentCapacity"),
        max_capacity: unsigned("MaxCapacity"),
        time_remaining_min: unsigned("TimeRemaining"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUSY: &str = include_str!("../../../tests/fixtures/macos/ioreg-accelerator-busy.txt");
    const TWO: &str = include_str!("../../../tests/fixtures/macos/ioreg-accelerator-intel-amd.txt");
    const BATTERY_TEXT: &str =
        include_str!("../../../tests/fixtures/macos/ioreg-battery-intel.txt");
    const BATTERY_XML: &[u8] =
        include_bytes!("../../../tests/fixtures/macos/ioreg-battery-apple.xml");

    #[test]
    fn apple_silicon_accelerator_statistics() {
        let gpus = parse_accelerators(BUSY);
        assert_eq!(
            gpus,
            vec![AcceleratorStats {
                name: "Apple M2 Max".into(),
                vendor: "apple",
                utilization_percent: Some(87.0),
                // Not the "(driver)" key printed first (0), nor the
                // IOReportLegend channel of the same name.
                in_use_bytes: Some(19_327_352_832),
            }]
        );
    }

    #[test]
    fn integers_above_2_pow_53_stay_exact() {
        let e = &parse_entries(BUSY)[0];
        assert_eq!(
            e.get("AGXParameterBufferMaxSize"),
            Some(&IoValue::Int(18_446_744_071_562_067_968))
        );
        // The legend is read as an array of tuples, not key=value pairs.
        assert!(matches!(e.get("IOReportLegend"), Some(IoValue::Array(_))));
        assert_eq!(
            e.get("SchedulerState").and_then(|s| s.get("Stamps")),
            Some(&IoValue::Array(vec![]))
        );
    }

    #[test]
    fn a_truncated_output_loses_only_the_cut_property() {
        let cut = BUSY
            .find("\"Device Utilization %\"=")
            .map(|i| &BUSY[..i + "\"Device Utilization %\"=8".len()])
            .unwrap();
        assert!(!cut.ends_with('\n'));
        assert_eq!(parse_accelerators(cut), vec![]);
        let e = &parse_entries(cut)[0];
        assert_eq!(e.get("PerformanceStatistics"), None);
        assert_eq!(
            e.get("IOClass"),
            Some(&IoValue::Str("AGXAcceleratorG14X".into()))
        );
        assert!(parse_entries("").is_empty());
    }

    #[test]
    fn only_accelerators_with_statistics_are_indexed() {
        let gpus = parse_accelerators(TWO);
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].vendor, "intel");
        assert_eq!(gpus[0].name, "IntelAccelerator");
        assert_eq!(gpus[0].utilization_percent, Some(3.0)); // "GPU Activity(%)"
        assert_eq!(gpus[0].in_use_bytes, None);
        assert_eq!(gpus[1].vendor, "amd");
        assert_eq!(gpus[1].utilization_percent, Some(41.0));
        // 250 % is not a percentage.
        let bogus = TWO.replace(
            "\"Device Utilization %\"=41",
            "\"Device Utilization %\"=250",
        );
        assert_eq!(parse_accelerators(&bogus)[1].utilization_percent, None);
    }

    #[test]
    fn unsigned_printed_amperage_is_sign_corrected() {
        assert_eq!(signed_ma(18_446_744_073_709_551_249), Some(-367));
        assert_eq!(signed_ma(1520), Some(1520));
        assert_eq!(signed_ma(-158), Some(-158));
        assert_eq!(signed_ma(1 << 64), None);
    }

    #[test]
    fn battery_text_discharging_intel_macbook() {
        let b = parse_battery_text(BATTERY_TEXT).unwrap().unwrap();
        // Top-level Voltage, not BatteryData's 11696 or the adapter's.
        assert_eq!(b.voltage_mv, 12326);
        assert_eq!(b.amperage_ma, -367);
        assert_eq!(b.is_charging, Some(false));
        assert_eq!(b.external_connected, Some(false));
        // 12326 mV × 367 mA = 4.523642 W.
        assert!((b.discharge_watts() - 4.523642).abs() < 1e-12);
        // Intel: capacities in mAh, 2629 of 4795; 65 minutes left.
        assert_eq!(b.charge_percent(), Some(2629.0 / 4795.0 * 100.0));
        assert_eq!(b.time_left_s(), Some(65.0 * 60.0));
    }

    #[test]
    fn battery_xml_apple_silicon() {
        let b = parse_battery_xml(BATTERY_XML).unwrap().unwrap();
        assert_eq!(b.voltage_mv, 12744);
        // <integer>18446744073709551458</integer>: −158 mA.
        assert_eq!(b.amperage_ma, -158);
        assert!((b.discharge_watts() - 12744.0 * 158.0 / 1e6).abs() < 1e-12);
        assert_eq!(b.external_connected, Some(false));
        // Apple Silicon: capacities in percent (77 of 100).
        assert_eq!(b.charge_percent(), Some(77.0));
    }

    #[test]
    fn charging_is_zero_and_no_battery_is_none() {
        let charging = BATTERY_TEXT
            .replace("18446744073709551249", "1520")
            .replace("\"IsCharging\" = No", "\"IsCharging\" = Yes");
        let b = parse_battery_text(&charging).unwrap().unwrap();
        assert_eq!(b.discharge_watts(), 0.0);
        assert_eq!(b.is_charging, Some(true));
        assert_eq!(parse_battery_text("").unwrap(), None);
        assert_eq!(parse_battery_xml(b"").unwrap(), None);
        let empty = br#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><array/></plist>"#;
        assert_eq!(parse_battery_xml(empty).unwrap(), None);
        let desktop = br#"<plist version="1.0"><array><dict>
<key>BatteryInstalled</key><false/></dict></array></plist>"#;
        assert_eq!(parse_battery_xml(desktop).unwrap(), None);
        assert!(parse_battery_xml(b"<plist><array><dict><key>Voltage</key>").is_err());
        let no_current = br#"<plist version="1.0"><array><dict>
<key>Voltage</key><integer>12000</integer></dict></array></plist>"#;
        assert!(parse_battery_xml(no_current).is_err());
    }

    #[test]
    fn parser_survives_hostile_lines() {
        for line in [
            "\"a\" = {{{{",
            "\"a\" = (\"x\"",
            "\"a\" = <0000",
            "\"a\"",
            "\"a\" = ",
            "\"a\" = {\"b\"=}",
            &format!("\"a\" = {}", "(".repeat(10_000)),
        ] {
            let text = format!("+-o X  <class X>\n      {line}\n");
            assert_eq!(parse_entries(&text)[0].props, vec![], "{line}");
        }
    }
}
