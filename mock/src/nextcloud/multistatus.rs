//! WebDAV's XML and header values as Nextcloud (Sabre) writes them: `d:multistatus` with the
//! common file properties, Sabre's `d:error` bodies, RFC 1123 dates, and hrefs encoded as
//! Sabre's `encodePath` does (and decoded back).

use std::fmt::Write;

use super::ocs::escape;
use crate::state::dav::{Comment, Tag};
use crate::state::{FileInfo, PERM_CREATE, PERM_DELETE, PERM_READ, PERM_SHARE, PERM_UPDATE};

const HEAD: &str = "<?xml version=\"1.0\"?>\n<d:multistatus xmlns:d=\"DAV:\" xmlns:s=\"http://sabredav.org/ns\" xmlns:oc=\"http://owncloud.org/ns\" xmlns:nc=\"http://nextcloud.org/ns\">\n";
/// Nextcloud's instance id, the suffix of `oc:id` and `OC-FileId`.
pub const INSTANCE_ID: &str = "ocmockswarm";

/// `OC-FileId` / `oc:id`: the file id zero-padded to 8 digits, then the instance id.
pub fn long_id(file_id: u64) -> String {
    format!("{file_id:08}{INSTANCE_ID}")
}

/// A multistatus under construction.
pub struct Multistatus(String);

impl Multistatus {
    pub fn new() -> Self {
        Self(HEAD.to_owned())
    }

    /// One resource's `d:response` with the properties Nextcloud reports for files and folders
    /// (folders have no content length or type). `mounted`: reached through a received share.
    pub fn file(&mut self, href: &str, info: &FileInfo, mounted: bool) {
        let out = &mut self.0;
        let _ = write!(
            out,
            " <d:response>\n  <d:href>{}</d:href>\n  <d:propstat>\n   <d:prop>\n",
            escape(href)
        );
        if info.path != "/" {
            let name = info.path.rsplit('/').next().unwrap_or("");
            let _ = writeln!(out, "    <d:displayname>{}</d:displayname>", escape(name));
        }
        let _ = writeln!(
            out,
            "    <d:getlastmodified>{}</d:getlastmodified>",
            http_date(info.modified)
        );
        let _ = writeln!(
            out,
            "    <d:getetag>&quot;{}&quot;</d:getetag>",
            escape(&info.etag)
        );
        if info.is_dir {
            out.push_str("    <d:resourcetype><d:collection/></d:resourcetype>\n");
        } else {
            out.push_str("    <d:resourcetype/>\n");
            let _ = writeln!(
                out,
                "    <d:getcontentlength>{}</d:getcontentlength>",
                info.size
            );
            let _ = writeln!(
                out,
                "    <d:getcontenttype>{}</d:getcontenttype>",
                escape(&info.content_type)
            );
        }
        let _ = writeln!(out, "    <oc:fileid>{}</oc:fileid>", info.file_id);
        let _ = writeln!(out, "    <oc:id>{}</oc:id>", long_id(info.file_id));
        let _ = writeln!(
            out,
            "    <oc:permissions>{}</oc:permissions>",
            dav_permissions(info.permissions, info.is_dir, mounted)
        );
        let _ = writeln!(out, "    <oc:size>{}</oc:size>", info.size);
        out.push_str("    <oc:favorite>0</oc:favorite>\n");
        out.push_str("   </d:prop>\n   <d:status>HTTP/1.1 200 OK</d:status>\n  </d:propstat>\n </d:response>\n");
    }

    /// The DAV root as a principal lookup sees it (`PROPFIND /remote.php/dav/`).
    pub fn principal_root(&mut self, href: &str, principal: &str) {
        let _ = write!(
            self.0,
            " <d:response>\n  <d:href>{}</d:href>\n  <d:propstat>\n   <d:prop>\n    <d:current-user-principal>\n     <d:href>{}</d:href>\n    </d:current-user-principal>\n    <d:resourcetype><d:collection/></d:resourcetype>\n   </d:prop>\n   <d:status>HTTP/1.1 200 OK</d:status>\n  </d:propstat>\n </d:response>\n",
            escape(href),
            escape(principal)
        );
    }

    /// One system tag with the properties Nextcloud's `systemtags` collection reports.
    pub fn tag(&mut self, href: &str, tag: &Tag) {
        let _ = write!(
            self.0,
            " <d:response>\n  <d:href>{}</d:href>\n  <d:propstat>\n   <d:prop>\n    <oc:id>{}</oc:id>\n    <oc:display-name>{}</oc:display-name>\n    <oc:user-visible>{}</oc:user-visible>\n    <oc:user-assignable>{}</oc:user-assignable>\n    <oc:can-assign>{}</oc:can-assign>\n   </d:prop>\n   <d:status>HTTP/1.1 200 OK</d:status>\n  </d:propstat>\n </d:response>\n",
            escape(href),
            tag.id,
            escape(&tag.name),
            tag.user_visible,
            tag.user_assignable,
            tag.user_assignable
        );
    }

    /// One comment on a file with the properties Nextcloud's `comments` collection reports.
    pub fn comment(&mut self, href: &str, c: &Comment) {
        let created = http_date(c.created);
        let _ = write!(
            self.0,
            " <d:response>\n  <d:href>{}</d:href>\n  <d:propstat>\n   <d:prop>\n    <oc:id>{}</oc:id>\n    <oc:parentId>0</oc:parentId>\n    <oc:topmostParentId>0</oc:topmostParentId>\n    <oc:childrenCount>0</oc:childrenCount>\n    <oc:verb>comment</oc:verb>\n    <oc:actorType>users</oc:actorType>\n    <oc:actorId>{}</oc:actorId>\n    <oc:creationDateTime>{created}</oc:creationDateTime>\n    <oc:latestChildDateTime/>\n    <oc:objectType>files</oc:objectType>\n    <oc:objectId>{}</oc:objectId>\n    <oc:actorDisplayName>{}</oc:actorDisplayName>\n    <oc:message>{}</oc:message>\n    <oc:isUnread>false</oc:isUnread>\n   </d:prop>\n   <d:status>HTTP/1.1 200 OK</d:status>\n  </d:propstat>\n </d:response>\n",
            escape(href),
            c.id,
            escape(&c.actor_id),
            c.file_id,
            escape(&c.actor_display_name),
            escape(&c.message)
        );
    }

    /// A bare collection with no properties of note (another user's `files/<u>/`).
    pub fn collection(&mut self, href: &str) {
        let _ = write!(
            self.0,
            " <d:response>\n  <d:href>{}</d:href>\n  <d:propstat>\n   <d:prop>\n    <d:resourcetype><d:collection/></d:resourcetype>\n   </d:prop>\n   <d:status>HTTP/1.1 200 OK</d:status>\n  </d:propstat>\n </d:response>\n",
            escape(href)
        );
    }

    pub fn finish(mut self) -> String {
        self.0.push_str("</d:multistatus>\n");
        self.0
    }
}

/// Sabre's error body: the exception class and the message.
pub fn error_body(exception: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:error xmlns:d=\"DAV:\" xmlns:s=\"http://sabredav.org/ns\">\n  <s:exception>Sabre\\DAV\\Exception\\{}</s:exception>\n  <s:message>{}</s:message>\n</d:error>\n",
        escape(exception),
        escape(message)
    )
}

/// Nextcloud's `oc:permissions` letters, in its order: S(hared) R(eshareable) M(ounted)
/// G(readable) D(eletable) NV(renameable, movable), then W (writable file) or CK (folder one
/// can create in).
pub fn dav_permissions(perms: u32, is_dir: bool, mounted: bool) -> String {
    let mut p = String::new();
    let has = |bit: u32| perms & bit == bit;
    if mounted {
        p.push('S');
    }
    if has(PERM_SHARE) {
        p.push('R');
    }
    if mounted {
        p.push('M');
    }
    if has(PERM_READ) {
        p.push('G');
    }
    if has(PERM_DELETE) {
        p.push('D');
    }
    if has(PERM_UPDATE) {
        p.push_str("NV");
    }
    if !is_dir && has(PERM_UPDATE) {
        p.push('W');
    }
    if is_dir && has(PERM_CREATE) {
        p.push_str("CK");
    }
    p
}

/// RFC 1123 date in GMT (`Thu, 04 Dec 2026 08:15:18 GMT`) of Unix seconds.
pub fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Percent-encodes a path as Sabre's `encodePath`: keeps `A-Za-z0-9_-.~()/:@`.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"_-.~()/:@".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Percent-decodes a URL path; `None` for a bad escape or invalid UTF-8.
pub fn decode_path(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_table() {
        let check = |secs: u64, expected: &str| assert_eq!(http_date(secs), expected, "{secs}");
        check(0, "Thu, 01 Jan 1970 00:00:00 GMT");
        check(951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT");
        check(1_796_372_118, "Fri, 04 Dec 2026 08:15:18 GMT");
    }

    #[test]
    fn paths_round_trip() {
        let check = |raw: &str, encoded: &str| {
            assert_eq!(encode_path(raw), encoded);
            assert_eq!(decode_path(encoded).as_deref(), Some(raw));
        };
        check("/a b/ü#?.md", "/a%20b/%C3%BC%23%3F.md");
        check(
            "/Team (2)/x:y@z",
            "/Team (2)/x:y@z".replace(' ', "%20").as_str(),
        );
        assert_eq!(decode_path("%zz"), None);
        assert_eq!(decode_path("%4"), None);
        assert_eq!(decode_path("%FF"), None);
    }

    #[test]
    fn permissions_table() {
        let check = |perms: u32, dir: bool, mounted: bool, expected: &str| {
            assert_eq!(dav_permissions(perms, dir, mounted), expected);
        };
        check(31, true, false, "RGDNVCK");
        check(31, false, false, "RGDNVW");
        check(1, false, true, "SMG");
        check(3, true, true, "SMGNV");
    }
}
