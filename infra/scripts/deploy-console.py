"""Uploads the operator console (infra/console/) and its config.json to the console bucket of a
deployed stack, under console/, where CloudFront serves it (template.yaml, ConsoleDistribution).

    .local/sam-venv/bin/python infra/scripts/deploy-console.py --stack STACK [--region REGION]

The bucket, the app client and the URL come from the stack's outputs (ConsoleBucketName,
ConsoleUserPoolClientId, ConsoleUrl). The page calls the API on its own origin (CloudFront
sends /admin/* to the API) and Cognito's regional endpoint. `--bucket` and `--client-id`
instead of `--stack` upload without asking CloudFormation. boto3 comes with the SAM CLI's
venv (`infra/scripts/sam-deps.sh`); credentials and region are boto3's usual ones.
"""

import argparse
import json
import mimetypes
import pathlib
import sys

import boto3

CONSOLE_DIR = pathlib.Path(__file__).resolve().parents[1] / "console"
PREFIX = "console/"


def outputs(stack, region):
    described = boto3.client("cloudformation", region_name=region).describe_stacks(StackName=stack)
    return {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0].get("Outputs", [])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack")
    parser.add_argument("--region")
    parser.add_argument("--bucket")
    parser.add_argument("--client-id")
    args = parser.parse_args()
    region = args.region or boto3.session.Session().region_name
    if not region:
        sys.exit("no region: pass --region or configure one for boto3")
    url = None
    if args.stack:
        found = outputs(args.stack, region)
        bucket, client_id = found["ConsoleBucketName"], found["ConsoleUserPoolClientId"]
        url = found.get("ConsoleUrl")
    elif args.bucket and args.client_id:
        bucket, client_id = args.bucket, args.client_id
    else:
        sys.exit("pass --stack, or --bucket and --client-id")

    s3 = boto3.client("s3", region_name=region)
    files = sorted(p for p in CONSOLE_DIR.iterdir() if p.is_file() and not p.name.startswith("."))
    for path in files:
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        s3.put_object(Bucket=bucket, Key=PREFIX + path.name, Body=path.read_bytes(),
                      ContentType=content_type, CacheControl="no-cache")
    config = {
        "api_base": "",
        "cognito_endpoint": f"https://cognito-idp.{region}.amazonaws.com/",
        "client_id": client_id,
        "region": region,
    }
    s3.put_object(Bucket=bucket, Key=PREFIX + "config.json", Body=json.dumps(config).encode(),
                  ContentType="application/json", CacheControl="no-cache")
    print(f"uploaded {len(files) + 1} files to s3://{bucket}/{PREFIX}" + (f"; open {url}" if url else ""))


if __name__ == "__main__":
    main()
