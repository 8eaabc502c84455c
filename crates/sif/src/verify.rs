//! Structural verification: everything the header and descriptor table
//! claim is checked against each other and against the real file length.
//! Nothing here reads object bytes, so it is cheap on any image size.

use crate::descriptor::{DESCRIPTOR_LEN, Descriptor, Link};
use crate::error::{Result, SifError};
use crate::header::HEADER_LEN;
use crate::reader::Sif;
use std::collections::{HashMap, HashSet};

impl<R> Sif<R> {
    /// Checks the image structure; returns the first problem found.
    /// See [`Sif::problems`] for the full list of checks.
    pub fn verify(&self) -> Result<()> {
        match self.problems().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every structural problem found, in a stable order: header fields,
    /// table and data section placement, used count, then per object
    /// (field values, range inside file and data section), duplicate ids,
    /// overlaps, links, and primary partitions.
    pub fn problems(&self) -> Vec<SifError> {
        let mut out = Vec::new();
        let h = &self.header;
        let file_len = self.file_len;

        // Header and section placement.
        let data = section_range(h.data_offset, h.data_size, &mut out);
        if h.descriptors_free < 0 || h.descriptors_free > h.descriptors_total {
            out.push(SifError::BadHeaderField {
                field: "descriptors_free",
                value: h.descriptors_free,
                reason: "must be between 0 and descriptors_total",
            });
        }
        // Opening already proved the table fits; here its declared size
        // must also agree exactly with the count.
        let table_len = h.descriptors_total.saturating_mul(DESCRIPTOR_LEN as i64);
        if h.descriptors_size != table_len {
            out.push(SifError::BadDescriptorTable {
                offset: h.descriptors_offset,
                size: h.descriptors_size,
                count: h.descriptors_total,
                reason: "size is not descriptors_total * 585",
            });
        }
        if let Some((ds, de)) = data {
            if ds < HEADER_LEN as u64 {
                out.push(SifError::BadHeaderField {
                    field: "data_offset",
                    value: h.data_offset,
                    reason: "data section overlaps the global header",
                });
            }
            if de > file_len {
                out.push(SifError::DataSectionOutOfFile {
                    data_start: ds,
                    data_end: de,
                    file_len,
                });
            }
            let ts = h.descriptors_offset.max(0) as u64;
            let te = ts.saturating_add(table_len.max(0) as u64);
            if ts < de && ds < te && te > ts && de > ds {
                out.push(SifError::TableOverlapsData {
                    table_start: ts,
                    table_end: te,
                    data_start: ds,
                    data_end: de,
                });
            }
        }

        // Used count.
        let declared = h.descriptors_total.saturating_sub(h.descriptors_free);
        if declared != self.descriptors.len() as i64 {
            out.push(SifError::UsedCountMismatch {
                declared,
                total: h.descriptors_total,
                free: h.descriptors_free,
                found: self.descriptors.len(),
            });
        }

        // Per object.
        let mut ranges: Vec<(u64, u64, u32)> = Vec::with_capacity(self.descriptors.len());
        for d in &self.descriptors {
            if let Some(r) = self.check_object(d, data, &mut out) {
                ranges.push(r);
            }
        }

        // Duplicate ids.
        let mut seen: HashMap<u32, usize> = HashMap::new();
        for d in &self.descriptors {
            if let Some(&first_index) = seen.get(&d.id) {
                out.push(SifError::DuplicateId {
                    id: d.id,
                    first_index,
                    second_index: d.index,
                });
            } else {
                seen.insert(d.id, d.index);
            }
        }

        // Overlaps: after sorting by start, a non-empty object overlaps
        // another iff it starts before the furthest end seen so far.
        ranges.retain(|(s, e, _)| e > s);
        ranges.sort_unstable();
        let mut furthest: Option<(u64, u64, u32)> = None;
        for &(s, e, id) in &ranges {
            if let Some((fs, fe, fid)) = furthest {
                if s < fe {
                    out.push(SifError::ObjectsOverlap {
                        first: fid,
                        first_start: fs,
                        first_end: fe,
                        second: id,
                        second_start: s,
                        second_end: e,
                    });
                }
                if e > fe {
                    furthest = Some((s, e, id));
                }
            } else {
                furthest = Some((s, e, id));
            }
        }

        // Links.
        let groups: HashSet<u32> = self
            .descriptors
            .iter()
            .filter_map(|d| d.group_id())
            .collect();
        for d in &self.descriptors {
            match d.link() {
                Some(Link::Object(t)) if !seen.contains_key(&t) => {
                    out.push(SifError::DanglingLink {
                        id: d.id,
                        target: t,
                        is_group: false,
                    })
                }
                Some(Link::Group(g)) if !groups.contains(&g) => out.push(SifError::DanglingLink {
                    id: d.id,
                    target: g,
                    is_group: true,
                }),
                _ => {}
            }
        }

        // Primary partitions.
        let mut prim = self.descriptors.iter().filter(|d| d.is_primary_partition());
        if let Some(first) = prim.next() {
            for second in prim {
                out.push(SifError::MultiplePrimaryPartitions {
                    first: first.id,
                    second: second.id,
                });
            }
        }
        out
    }

    /// Checks one object's fields and placement; returns its byte range
    /// when it is sane enough to take part in the overlap check.
    fn check_object(
        &self,
        d: &Descriptor,
        data: Option<(u64, u64)>,
        out: &mut Vec<SifError>,
    ) -> Option<(u64, u64, u32)> {
        let field = |field, value, reason| SifError::BadDescriptorField {
            id: d.id,
            index: d.index,
            field,
            value,
            reason,
        };
        if d.id == 0 {
            out.push(field("id", 0, "object id 0 is reserved"));
        }
        if d.offset < 0 {
            out.push(field("offset", d.offset, "negative"));
            return None;
        }
        if d.size < 0 {
            out.push(field("size", d.size, "negative"));
            return None;
        }
        if d.size_with_padding < d.size {
            out.push(SifError::BadPadding {
                id: d.id,
                size: d.size,
                size_with_padding: d.size_with_padding,
            });
        }
        let Some((start, end)) = d.range() else {
            out.push(field("size", d.size, "offset + size overflows"));
            return None;
        };
        if end > self.file_len {
            out.push(SifError::ObjectOutOfFile {
                id: d.id,
                offset: start,
                end,
                file_len: self.file_len,
            });
        }
        if let Some((ds, de)) = data {
            if start < ds || end > de {
                out.push(SifError::ObjectOutsideData {
                    id: d.id,
                    offset: start,
                    end,
                    data_start: ds,
                    data_end: de,
                });
            }
        }
        Some((start, end, d.id))
    }
}

/// Validates the data section fields; `None` (with a problem pushed) if they
/// cannot describe a byte range.
fn section_range(offset: i64, size: i64, out: &mut Vec<SifError>) -> Option<(u64, u64)> {
    if offset < 0 {
        out.push(SifError::BadHeaderField {
            field: "data_offset",
            value: offset,
            reason: "negative",
        });
        return None;
    }
    if size < 0 {
        out.push(SifError::BadHeaderField {
            field: "data_size",
            value: size,
            reason: "negative",
        });
        return None;
    }
    match (offset as u64).checked_add(size as u64) {
        Some(end) => Some((offset as u64, end)),
        None => {
            out.push(SifError::BadHeaderField {
                field: "data_size",
                value: size,
                reason: "data_offset + data_size overflows",
            });
            None
        }
    }
}
