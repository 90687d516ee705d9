//! Trade bill reading (`alipay::bill`) on one core, next to the work no reader can avoid.
//!
//! For bills of 10,000, 100,000 and 1,000,000 detail rows, synthesised in memory in Alipay's
//! layout (25 columns, GBK, trailing tabs, about one refund in ten, quoted cells, footer
//! totals, a summary file) and zipped, it measures in the same run:
//!
//! - **read**: [`BillArchive`] and [`DetailReader`] over every row (each a typed
//!   `BillRecord`), then the whole-bill check against the footer and the summary;
//! - **baseline**: inflating the same entry and GBK-decoding it to UTF-8 with encoding_rs
//!   into a fixed buffer, without looking at it;
//!
//! and prints per size the rows per second of both, their ratio (read time over baseline
//! time: how much dearer than the unavoidable work reading is), and how far the process's
//! peak resident memory grew while reading (VmHWM, reset before through
//! `/proc/self/clear_refs`; where that is refused, VmRSS sampled every 65,536 rows), which
//! must not grow with the rows. Next to it, the same read keeping every row in a `Vec`, to
//! show that the measure does see memory that grows (memory freed by that read may serve a
//! later, larger size: the sizes run smallest first, so a growth with the rows would still
//! show).
//!
//! `cargo bench -p alipay --bench bill_parse`. `BENCH_SECONDS` sets the measuring time per
//! size (default 3, fractions allowed; at least three rounds of each are run, interleaved,
//! and the best is reported: these machines are noisy). `BILL_BENCH_ROWS=10000,50000` picks
//! other sizes; `BILL_ZIP=path.zip` measures that bill instead (for example one written by
//! `alipay-sandbox synth-bill`). Without `--bench` on the command line (`cargo test
//! --all-targets` runs bench targets that way) a bill of 1,000 rows is read once, as a smoke
//! test. The process exits non-zero only when a bill reads wrong.

#[allow(dead_code)] // The notification inputs there are for the other benches.
mod common;

use alipay::bill::{BillArchive, BillRecord, DetailReader, Summary};
use std::error::Error;
use std::hint::black_box;
use std::io::{Cursor, Read, Write};
use std::time::{Duration, Instant};
use zip::ZipWriter;
use zip::write::SimpleFileOptions;

type BenchResult<T> = Result<T, Box<dyn Error>>;

const DEFAULT_SECONDS: f64 = 3.0;
const MIN_ROUNDS: u32 = 3;
const MAX_ROUNDS: u32 = 50;
const SIZES: [u64; 3] = [10_000, 100_000, 1_000_000];
const SAMPLE_EVERY: u64 = 65_536;

const DETAIL_NAME: &str = "20880000000000010156_20261125_业务明细.csv";
const SUMMARY_NAME: &str = "20880000000000010156_20261125_业务明细(汇总).csv";
const DETAIL_HEADER: &str = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注";
const SUMMARY_HEADER: &str = "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）";
const STORES: [(&str, &str); 4] = [
    ("S001", "静安寺店"),
    ("S002", "徐家汇店"),
    ("S003", ""),
    ("", ""),
];
/// 商品名称, quoted when it holds a comma.
const SUBJECTS: [&str; 5] = [
    "午市套餐A",
    "拿铁（大杯）",
    "\"咖啡,大杯\"",
    "Americano",
    "会员储值卡充值",
];
const BUYERS: [&str; 3] = [
    "*津水(602***@qq.com)",
    "138******21",
    "*明(zhang***@163.com)",
];
const REMARKS: [&str; 3] = ["桌号12", "", "外卖 3 份"];

fn gbk(text: &str) -> Vec<u8> {
    encoding_rs::GBK.encode(text).0.into_owned()
}

/// Yuan with two decimals from fen, as Alipay writes it.
fn yuan(out: &mut Vec<u8>, fen: i64) -> std::io::Result<()> {
    let sign = if fen < 0 { "-" } else { "" };
    write!(out, "{sign}{}.{:02}", fen.abs() / 100, fen.abs() % 100)
}

/// Per-store sums for the summary.
#[derive(Default, Clone, Copy)]
struct StoreSums {
    payments: u64,
    refunds: u64,
    receipt: i64,
}

/// A bill ZIP of `rows` detail rows; returns it with the detail file's inflated size.
fn synth_bill(rows: u64) -> BenchResult<(Vec<u8>, u64)> {
    let kinds = [gbk("交易"), gbk("退款")];
    let subjects: Vec<Vec<u8>> = SUBJECTS.iter().map(|s| gbk(s)).collect();
    let buyers: Vec<Vec<u8>> = BUYERS.iter().map(|s| gbk(s)).collect();
    let remarks: Vec<Vec<u8>> = REMARKS.iter().map(|s| gbk(s)).collect();
    let stores: Vec<(Vec<u8>, Vec<u8>)> = STORES
        .iter()
        .map(|(id, name)| (gbk(id), gbk(name)))
        .collect();
    let mut sums = [StoreSums::default(); STORES.len()];

    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file_with_options(SimpleFileOptions::default().name(gbk(DETAIL_NAME).as_slice()))?;
    let mut out = gbk(&format!(
        "#支付宝业务明细查询\r\n#账号：[20880000000000010156]\r\n#起始日期：[2026年11月25日 00:00:00]   终止日期：[2026年11月26日 00:00:00]\r\n#-----------------------------------------业务明细列表----------------------------------------\r\n{DETAIL_HEADER}\r\n"
    ));
    let mut detail_bytes = 0u64;
    let (mut payments, mut refunds, mut paid, mut refunded) = (0u64, 0u64, 0i64, 0i64);
    let mut fen = 0i64;
    for i in 0..rows {
        // One row in ten refunds the payment just before it, in full.
        let refund = i % 10 == 9;
        let paid_row = if refund { i - 1 } else { i };
        if !refund {
            fen = i64::try_from(paid_row * 7_919 % 50_000 + 1)?;
        }
        let amount = if refund { -fen } else { fen };
        let store = usize::try_from(paid_row % STORES.len() as u64)?;
        let second = i * 86_400 / rows.max(1);
        let created = paid_row * 86_400 / rows.max(1);
        let time = |s: u64| (s / 3600, s / 60 % 60, s % 60);
        let ((ch, cm, cs), (fh, fm, fs)) = (time(created), time(second));
        if refund {
            refunds += 1;
            refunded += amount;
            sums[store].refunds += 1;
        } else {
            payments += 1;
            paid += amount;
            sums[store].payments += 1;
        }
        sums[store].receipt += amount;
        let pick = |n: usize| usize::try_from(paid_row % n as u64).unwrap_or(0);
        write!(out, "2026112522001{paid_row:015}\t,order_{paid_row:09}\t,")?;
        out.extend_from_slice(&kinds[usize::from(refund)]);
        out.extend_from_slice(b"\t,");
        out.extend_from_slice(&subjects[pick(subjects.len())]);
        write!(
            out,
            ",2026-11-25 {ch:02}:{cm:02}:{cs:02},2026-11-25 {fh:02}:{fm:02}:{fs:02},"
        )?;
        out.extend_from_slice(&stores[store].0);
        out.extend_from_slice(b"\t,");
        out.extend_from_slice(&stores[store].1);
        out.extend_from_slice(b"\t,op01\t,T0001\t,");
        out.extend_from_slice(&buyers[pick(buyers.len())]);
        out.extend_from_slice(b"\t,");
        yuan(&mut out, amount)?;
        out.push(b',');
        yuan(&mut out, amount)?;
        out.extend_from_slice(b",0.00,0.00,0.00,0.00,0.00,\t,0.00,0.00,");
        if refund {
            write!(out, "r{paid_row}")?;
        }
        out.extend_from_slice(b"\t,");
        // 服务费: 0.6 %, returned with a refund.
        yuan(&mut out, amount * 6 / 1000)?;
        out.extend_from_slice(b",0.00,");
        out.extend_from_slice(&remarks[pick(remarks.len())]);
        out.extend_from_slice(b"\t\r\n");
        if out.len() >= 64 * 1024 {
            zip.write_all(&out)?;
            detail_bytes += out.len() as u64;
            out.clear();
        }
    }
    let mut footer = String::from(
        "#-----------------------------------------业务明细列表结束------------------------------------\r\n",
    );
    let text = |fen: i64| {
        let mut out = Vec::new();
        yuan(&mut out, fen).map(|()| String::from_utf8_lossy(&out).into_owned())
    };
    footer.push_str(&format!(
        "#交易合计：{payments}笔，商家实收共{}元，商家优惠共0.00元\r\n#退款合计：{refunds}笔，商家实收退款共{}元，商家优惠退款共0.00元\r\n#导出时间：[2026年11月26日 05:00:00]\r\n",
        text(paid)?,
        text(refunded)?
    ));
    out.extend_from_slice(&gbk(&footer));
    zip.write_all(&out)?;
    detail_bytes += out.len() as u64;

    zip.start_file_with_options(SimpleFileOptions::default().name(gbk(SUMMARY_NAME).as_slice()))?;
    let mut summary = format!(
        "#支付宝业务汇总查询\r\n#账号：[20880000000000010156]\r\n#起始日期：[2026年11月25日 00:00:00]   终止日期：[2026年11月26日 00:00:00]\r\n#-----------------------------------------业务汇总列表----------------------------------------\r\n{SUMMARY_HEADER}\r\n"
    );
    let mut total = StoreSums::default();
    let line = |id: &str, name: &str, sums: &StoreSums| -> BenchResult<String> {
        let receipt = text(sums.receipt)?;
        Ok(format!(
            "{id},{name},{},{},{receipt},{receipt},0.00,0.00,0.00,0.00,0.00,{receipt}\r\n",
            sums.payments, sums.refunds
        ))
    };
    for ((id, name), store) in STORES.iter().zip(&sums) {
        total.payments += store.payments;
        total.refunds += store.refunds;
        total.receipt += store.receipt;
        summary.push_str(&line(&format!("{id}\t"), &format!("{name}\t"), store)?);
    }
    summary.push_str(&line("合计", "", &total)?);
    summary.push_str("#-----------------------------------------业务汇总列表结束------------------------------------\r\n#导出时间：[2026年11月26日 05:00:00]\r\n");
    zip.write_all(&gbk(&summary))?;
    Ok((zip.finish()?.into_inner(), detail_bytes))
}

/// Reads every row and checks the whole bill; returns the rows. With `memory`, samples the
/// resident memory as it goes; with `kept`, keeps every row there (the instrument's check).
fn read_bill(
    zip: &[u8],
    memory: Option<&mut Memory>,
    mut kept: Option<&mut Vec<BillRecord>>,
) -> BenchResult<u64> {
    let mut archive = BillArchive::new(Cursor::new(zip))?;
    let summary: Option<Summary> = archive.summary()?;
    let mut reader: DetailReader<_> = archive.detail()?;
    let mut rows = 0u64;
    match memory {
        None => {
            for record in reader.by_ref() {
                black_box(record?);
                rows += 1;
            }
        }
        Some(memory) => {
            for record in reader.by_ref() {
                let record = record?;
                match kept.as_deref_mut() {
                    Some(kept) => kept.push(record),
                    None => drop(black_box(record)),
                }
                rows += 1;
                if rows.is_multiple_of(SAMPLE_EVERY) {
                    memory.sample();
                }
            }
        }
    }
    reader.check_bill(summary.as_ref())?;
    Ok(rows)
}

/// Inflates the detail entry and GBK-decodes it into a fixed buffer: what any reader of the
/// bill must do. Returns the bytes inflated.
fn baseline(zip: &[u8], index: usize) -> BenchResult<u64> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip))?;
    let mut entry = archive.by_index(index)?;
    let mut decoder = encoding_rs::GBK.new_decoder_without_bom_handling();
    let mut input = vec![0u8; 64 * 1024];
    let mut output = vec![0u8; 3 * 64 * 1024 + 16];
    let mut total = 0u64;
    loop {
        let read = entry.read(&mut input)?;
        let last = read == 0;
        let mut at = 0;
        loop {
            let (result, used, written, _) =
                decoder.decode_to_utf8(&input[at..read], &mut output, last);
            black_box(&output[..written]);
            at += used;
            if result == encoding_rs::CoderResult::InputEmpty {
                break;
            }
        }
        if last {
            return Ok(total);
        }
        total += read as u64;
    }
}

/// The process's resident memory, from `/proc/self/status`.
struct Memory {
    before: u64,
    peak: u64,
    /// Whether the kernel's peak (VmHWM) was reset when reading began.
    hwm_reset: bool,
}

fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

impl Memory {
    fn start() -> Option<Memory> {
        let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let before = status_kb("VmRSS:")?;
        Some(Memory {
            before,
            peak: before,
            hwm_reset,
        })
    }

    fn sample(&mut self) {
        if let Some(rss) = status_kb("VmRSS:") {
            self.peak = self.peak.max(rss);
        }
    }

    /// How far the peak rose above the start, in MB.
    fn growth_mb(mut self) -> f64 {
        self.sample();
        if self.hwm_reset
            && let Some(hwm) = status_kb("VmHWM:")
        {
            self.peak = self.peak.max(hwm);
        }
        self.peak.saturating_sub(self.before) as f64 * 1024.0 / 1e6
    }
}

/// One bill, measured: rows, best times, RSS growth.
struct Measured {
    rows: u64,
    read: Duration,
    baseline: Duration,
    rss_mb: Option<f64>,
    /// The same when every row is kept in a `Vec`.
    kept_mb: Option<f64>,
    rounds: u32,
}

fn measure(zip: &[u8], full: bool) -> BenchResult<Measured> {
    let index = {
        let archive = BillArchive::new(Cursor::new(zip))?;
        let detail = archive.detail_name();
        archive
            .entry_names()
            .iter()
            .position(|name| name == detail)
            .ok_or("the detail entry is not among the entries")?
    };
    // The first read measures memory (and warms up); the second checks that the measure
    // sees memory that does grow with the rows.
    let mut memory = Memory::start();
    let rows = read_bill(zip, memory.as_mut(), None)?;
    let rss_mb = memory.map(Memory::growth_mb);
    let mut kept = Vec::new();
    let mut memory = Memory::start();
    read_bill(zip, memory.as_mut(), Some(&mut kept))?;
    let kept_mb = memory.map(Memory::growth_mb);
    drop(kept);
    let inflated = baseline(zip, index)?;
    black_box(inflated);
    if !full {
        return Ok(Measured {
            rows,
            read: Duration::ZERO,
            baseline: Duration::ZERO,
            rss_mb,
            kept_mb,
            rounds: 0,
        });
    }
    let budget = common::budget(DEFAULT_SECONDS)?;
    let started = Instant::now();
    let (mut read, mut base, mut rounds) = (Duration::MAX, Duration::MAX, 0);
    while rounds < MIN_ROUNDS || (started.elapsed() < budget && rounds < MAX_ROUNDS) {
        let t = Instant::now();
        if read_bill(zip, None, None)? != rows {
            return Err("a second read counted other rows".into());
        }
        read = read.min(t.elapsed());
        let t = Instant::now();
        black_box(baseline(zip, index)?);
        base = base.min(t.elapsed());
        rounds += 1;
    }
    Ok(Measured {
        rows,
        read,
        baseline: base,
        rss_mb,
        kept_mb,
        rounds,
    })
}

fn report(label: &str, m: &Measured, detail_bytes: u64, zip_bytes: usize) {
    let per_second = |d: Duration| m.rows as f64 / d.as_secs_f64().max(1e-9) / 1e6;
    let mb = |mb: Option<f64>| mb.map_or_else(|| "unknown".to_owned(), |mb| format!("{mb:+.1} MB"));
    let (rss, kept) = (mb(m.rss_mb), mb(m.kept_mb));
    println!(
        "{label:>9} rows ({:.1} MB CSV, {:.1} MB ZIP): read+check {:.2} M rows/s ({:.3} s); \
         inflate+GBK baseline {:.2} M rows/s ({:.3} s); ratio {:.2}x; peak RSS {rss} (keeping the rows: {kept}); best of {}",
        detail_bytes as f64 / 1e6,
        zip_bytes as f64 / 1e6,
        per_second(m.read),
        m.read.as_secs_f64(),
        per_second(m.baseline),
        m.baseline.as_secs_f64(),
        m.read.as_secs_f64() / m.baseline.as_secs_f64().max(1e-9),
        m.rounds,
    );
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| {
            let mut fields = l.split_whitespace();
            Some(format!(
                "{} {} {}",
                fields.next()?,
                fields.next()?,
                fields.next()?
            ))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn inflated_size(zip: &[u8]) -> BenchResult<u64> {
    let archive = BillArchive::new(Cursor::new(zip))?;
    let detail = archive.detail_name().to_owned();
    let mut zip = zip::ZipArchive::new(Cursor::new(zip))?;
    for index in 0..zip.len() {
        let entry = zip.by_index(index)?;
        if alipay::bill::decode_entry_name(entry.name_raw()) == detail {
            return Ok(entry.size());
        }
    }
    Err("no detail entry".into())
}

fn main() -> BenchResult<()> {
    let full = std::env::args().any(|arg| arg == "--bench");
    if !full {
        let (zip, _) = synth_bill(1_000)?;
        let m = measure(&zip, false)?;
        if m.rows != 1_000 {
            return Err(format!("read {} rows of 1000", m.rows).into());
        }
        println!("smoke test: a bill of 1,000 rows read and checked (pass --bench to measure)");
        return Ok(());
    }
    println!(
        "one core; read = BillArchive + DetailReader over every row + check_bill; baseline = \
         inflate + GBK decode of the same entry; ratio = read time / baseline time; load \
         average {}",
        load_average()
    );
    if let Some(path) = std::env::var_os("BILL_ZIP") {
        let zip = std::fs::read(&path)?;
        let m = measure(&zip, true)?;
        report(&m.rows.to_string(), &m, inflated_size(&zip)?, zip.len());
        return Ok(());
    }
    let sizes: Vec<u64> = match std::env::var("BILL_BENCH_ROWS") {
        Ok(text) => text
            .split(',')
            .map(|n| n.trim().replace('_', "").parse())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("BILL_BENCH_ROWS={text:?}: {e}"))?,
        Err(_) => SIZES.to_vec(),
    };
    for rows in sizes {
        let (zip, detail_bytes) = synth_bill(rows)?;
        let m = measure(&zip, true)?;
        if m.rows != rows {
            return Err(format!("read {} rows of {rows}", m.rows).into());
        }
        report(&rows.to_string(), &m, detail_bytes, zip.len());
    }
    Ok(())
}
