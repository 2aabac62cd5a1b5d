//! Access control: getAcl, setAcl, addauth, whoami.

use corral_client::{Error, ErrorCode};

use super::walk::Dfs;
use super::{check_path, parse, parse_version, usage_error, wrap, CliError, CmdResult, Ctx};
use crate::acl;
use crate::format;
use crate::getopt::{Opt, Spec};

const GET_ACL: Spec = Spec::new(&[Opt::flag('s', "stats")]);
const SET_ACL: Spec = Spec::new(&[
    Opt::flag('s', "stats"),
    Opt::value('v', "version"),
    Opt::flag('R', "recursive"),
]);
const ADD_AUTH: Spec = Spec::new(&[]);

pub async fn get_acl(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let p = parse(&GET_ACL, words)?;
    if p.args.len() < 2 {
        return Err(usage_error("getAcl"));
    }
    let path = p.args[1].as_str();
    check_path(path)?;
    let client = ctx.client(Some(path)).await?;
    let (acl, stat) = client.get_acl(path).await.map_err(|e| wrap(&e, path))?;
    let mut text = String::new();
    for entry in &acl {
        text.push_str(&format::acl(entry));
        text.push('\n');
    }
    if p.has('s') {
        text.push_str(&format::stat(&stat));
    }
    out!("{text}");
    Ok(())
}

pub async fn set_acl(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let p = parse(&SET_ACL, words)?;
    if p.args.len() < 3 {
        return Err(usage_error("setAcl"));
    }
    let path = p.args[1].as_str();
    let acl = acl::parse(&p.args[2]);
    let version = p.value('v').map(parse_version).transpose()?;
    if p.has('R') {
        let mut walk = Dfs::new(path, false).map_err(|e| e.into_cli())?;
        let client = ctx.client(Some(path)).await?;
        while let Some(node) = walk.next(ctx, &client).await.map_err(|e| e.into_cli())? {
            // zkCli prints each failure with print(), no newline, and goes on.
            if acl.is_empty() {
                out!("{}", format::keeper_message(&Error::InvalidAcl, None));
            } else if let Err(err) = client.set_acl(&node, &acl, version).await {
                out!("{}", format::keeper_message(&err, Some(&node)));
            }
        }
        return Ok(());
    }
    check_path(path)?;
    if acl.is_empty() {
        return Err(CliError::failed(format::wrapper_message(
            &Error::InvalidAcl,
            None,
        )));
    }
    let client = ctx.client(Some(path)).await?;
    let stat = client
        .set_acl(path, &acl, version)
        .await
        .map_err(|e| wrap(&e, path))?;
    if p.has('s') {
        out!("{}", format::stat(&stat));
    }
    Ok(())
}

pub async fn add_auth(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let p = parse(&ADD_AUTH, words)?;
    if p.args.len() < 2 {
        return Err(usage_error("addauth"));
    }
    let scheme = p.args[1].as_str();
    let auth = p.args.get(2).map(String::as_bytes).unwrap_or_default();
    let client = ctx.client(None).await?;
    match client.add_auth(scheme, auth).await {
        Ok(()) => Ok(()),
        // zkCli does not wait for the answer: a refusal shows as the
        // session's AuthFailed event, which the session printer prints.
        Err(err) if err.code() == Some(ErrorCode::AuthFailed) => Ok(()),
        Err(err) => Err(CliError::failed(format::wrapper_message(&err, None))),
    }
}

pub async fn who_am_i(ctx: &Ctx<'_>) -> CmdResult {
    let client = ctx.client(None).await?;
    let identities = client
        .whoami()
        .await
        .map_err(|e| CliError::failed(format::wrapper_message(&e, None)))?;
    let mut text = String::from("Auth scheme: User\n");
    for info in identities {
        text.push_str(&format!("{}: {}\n", info.auth_scheme, info.user));
    }
    out!("{text}");
    Ok(())
}
